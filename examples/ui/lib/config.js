// The UI's OrchestratorConfig, built on the Next server from the environment on
// every request (see pages/_app.jsx), so the same build can point at any host.
const DEFAULT_HOST = 'http://127.0.0.1:8080';

function env(name, fallback) {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

function flag(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  return value.toLowerCase() === 'true';
}

export function orchestratorConfigFromEnv() {
  const apiHost = env('ORCHESTRATOR_API_HOST', DEFAULT_HOST);
  const graphqlHost = env('ORCHESTRATOR_GRAPHQL_HOST', apiHost);
  const wsDefault = apiHost.replace(/^http/, 'ws') + '/api/ws/events';
  const filters = env('START_WORKFLOW_FILTERS', '');
  return {
    environmentName: env('ENVIRONMENT_NAME', 'Development'),
    orchestratorApiBaseUrl: apiHost + env('ORCHESTRATOR_API_PATH', '/api'),
    graphqlEndpointCore: graphqlHost + env('ORCHESTRATOR_GRAPHQL_PATH', '/api/graphql'),
    orchestratorWebsocketUrl: env('ORCHESTRATOR_WEBSOCKET_URL', wsDefault),
    // Auth stays on unless OAUTH2_ACTIVE is literally "false" (as the library's own apps do);
    // examples/ui/run sets it to false.
    authActive: env('OAUTH2_ACTIVE', 'true').toLowerCase() !== 'false',
    useWebSockets: flag('USE_WEB_SOCKETS', false),
    useThemeToggle: flag('USE_THEME_TOGGLE', false),
    showWorkflowInformationLink: flag('SHOW_WORKFLOW_INFORMATION_LINK', false),
    workflowInformationLinkUrl: env('WORKFLOW_INFORMATION_LINK_URL', ''),
    enableSupportMenuItem: flag('ENABLE_SUPPORT_MENU_ITEM', false),
    supportMenuItemUrl: env('SUPPORT_MENU_ITEM_URL', ''),
    enableAoStackStatus: flag('ENABLE_AO_STACK_STATUS', false),
    aoStackStatusUrl: env('AO_STACK_STATUS_URL', ''),
    startWorkflowFilters: filters ? filters.split('|') : undefined,
  };
}
