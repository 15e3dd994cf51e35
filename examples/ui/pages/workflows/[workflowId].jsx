import { useRouter } from 'next/router';

import { WfoProcessDetailPage } from '@orchestrator-ui/orchestrator-ui-components';

export default function WorkflowPage() {
  const { workflowId } = useRouter().query;
  return workflowId ? <WfoProcessDetailPage processId={workflowId} /> : null;
}
