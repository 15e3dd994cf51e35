// The library reads the id from the router's query itself.
import { WfoSubscriptionDetailPage } from '@orchestrator-ui/orchestrator-ui-components';

export default function SubscriptionPage() {
  return <WfoSubscriptionDetailPage />;
}
