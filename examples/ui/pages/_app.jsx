// The provider stack the library's pages expect (configuration, Redux/RTK Query
// store, session, error monitoring, auth, EUI theme, translations, the page
// template with header and sidebar, query parameters), then the page itself.
import { useState } from 'react';

import { SessionProvider } from 'next-auth/react';
import App from 'next/app';
import Head from 'next/head';
import { NextAdapter } from 'next-query-params';
import { QueryParamProvider } from 'use-query-params';

import { EuiProvider } from '@elastic/eui';
import {
  ColorModes,
  ConfirmationDialogContextWrapper,
  OrchestratorConfigProvider,
  StoreProvider,
  WfoAuth,
  WfoErrorBoundary,
  WfoErrorMonitoringProvider,
  WfoPageTemplate,
  WfoToastsList,
  wfoThemeModifications,
} from '@orchestrator-ui/orchestrator-ui-components';

import { orchestratorConfigFromEnv } from '../lib/config';
import { appLogo } from '../lib/logo';
import { Translations } from '../lib/translations';

const errorMonitoring = {
  reportError: (error) => console.error(error),
  reportMessage: () => {},
};

function OrchestratorApp({ Component, pageProps, orchestratorConfig }) {
  const [colorMode, setColorMode] = useState(ColorModes.LIGHT);
  return (
    <WfoErrorBoundary>
      <OrchestratorConfigProvider initialOrchestratorConfig={orchestratorConfig}>
        <StoreProvider initialOrchestratorConfig={orchestratorConfig}>
          <SessionProvider session={pageProps.session}>
            <WfoErrorMonitoringProvider errorMonitoringHandler={errorMonitoring}>
              <WfoAuth>
                <EuiProvider colorMode={colorMode} modify={wfoThemeModifications}>
                  <Translations>
                    <Head>
                      <title>Orchestrator</title>
                    </Head>
                    <ConfirmationDialogContextWrapper>
                      <WfoPageTemplate getAppLogo={appLogo} colorMode={colorMode} setColorMode={setColorMode}>
                        <QueryParamProvider adapter={NextAdapter}
                          options={{ removeDefaultsFromUrl: false, enableBatching: true }}>
                          <Component {...pageProps} />
                        </QueryParamProvider>
                      </WfoPageTemplate>
                      <WfoToastsList />
                    </ConfirmationDialogContextWrapper>
                  </Translations>
                </EuiProvider>
              </WfoAuth>
            </WfoErrorMonitoringProvider>
          </SessionProvider>
        </StoreProvider>
      </OrchestratorConfigProvider>
    </WfoErrorBoundary>
  );
}

// Runs on the Next server for every page: the configuration comes from the
// environment at run time, not at build time.
// On client-side navigations it runs in the browser: keep the server's answer.
OrchestratorApp.getInitialProps = async (context) => {
  const props = await App.getInitialProps(context);
  const orchestratorConfig =
    typeof window === 'undefined' ? orchestratorConfigFromEnv() : window.__NEXT_DATA__.props.orchestratorConfig;
  return { ...props, orchestratorConfig };
};

export default OrchestratorApp;
