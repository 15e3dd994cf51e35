import { WfoWorkflowsListPage } from '@orchestrator-ui/orchestrator-ui-components';

export default function WorkflowsPage() {
  return <WfoWorkflowsListPage />;
}
