import { useRouter } from 'next/router';

import { WfoStartProcessPage } from '@orchestrator-ui/orchestrator-ui-components';

export default function NewTaskPage() {
  const { taskName } = useRouter().query;
  return taskName ? <WfoStartProcessPage processName={taskName} isTask /> : null;
}
