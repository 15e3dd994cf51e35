// Next.js configuration of the example UI. Everything that points the UI at a
// backend is read at run time (lib/config.js), so one build serves any host.
/** @type {import('next').NextConfig} */
module.exports = {
  reactStrictMode: false,
  // The library ships ESM with JSX already compiled; Next must still bundle it.
  transpilePackages: ['@orchestrator-ui/orchestrator-ui-components'],
  i18n: { locales: ['en-GB', 'nl-NL'], defaultLocale: 'en-GB' },
  eslint: { ignoreDuringBuilds: true },
  poweredByHeader: false,
};
