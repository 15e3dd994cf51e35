import { useRouter } from 'next/router';

import { WfoStartProcessPage } from '@orchestrator-ui/orchestrator-ui-components';

export default function NewWorkflowPage() {
  const { workflowName } = useRouter().query;
  return workflowName ? <WfoStartProcessPage processName={workflowName} isTask={false} /> : null;
}
