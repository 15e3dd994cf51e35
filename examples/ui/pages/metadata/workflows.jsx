import { WfoWorkflowsPage } from '@orchestrator-ui/orchestrator-ui-components';

export default function Metadata() {
  return <WfoWorkflowsPage />;
}
