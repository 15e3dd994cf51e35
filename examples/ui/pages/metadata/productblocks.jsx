import { WfoProductBlocksPage } from '@orchestrator-ui/orchestrator-ui-components';

export default function Metadata() {
  return <WfoProductBlocksPage />;
}
