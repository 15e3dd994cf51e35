// next-intl messages: the library's own texts for the router's locale plus the
// form labels the backend serves (GET /api/translations/{locale}).
import { IntlProvider } from 'next-intl';
import { useRouter } from 'next/router';

import { useGetTranslationMessages } from '@orchestrator-ui/orchestrator-ui-components';

export function Translations({ children }) {
  const { locale } = useRouter();
  const messages = useGetTranslationMessages(locale);
  return (
    <IntlProvider locale={locale} messages={messages} timeZone="UTC"
      onError={(error) => { if (error.code !== 'MISSING_MESSAGE') console.error(error); }}>
      {children}
    </IntlProvider>
  );
}
