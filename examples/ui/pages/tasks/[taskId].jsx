import { useRouter } from 'next/router';

import { WfoProcessDetailPage } from '@orchestrator-ui/orchestrator-ui-components';

export default function TaskPage() {
  const { taskId } = useRouter().query;
  return taskId ? <WfoProcessDetailPage processId={taskId} /> : null;
}
