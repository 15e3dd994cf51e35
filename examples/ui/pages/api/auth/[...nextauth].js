// NextAuth inside the UI server. With OAUTH2_ACTIVE=false (the default of
// examples/ui/run) there is no provider and the session stays empty; otherwise
// a generic OIDC provider is configured from the environment (reference §1.2)
// and the access token is copied into the session, which the library sends to
// the backend as a bearer token.
import NextAuth from 'next-auth';

const authActive = (process.env.OAUTH2_ACTIVE ?? 'true').toLowerCase() !== 'false';

function oidcProvider() {
  const scope = process.env.NEXTAUTH_AUTHORIZATION_SCOPE_OVERRIDE || 'openid profile';
  return {
    id: process.env.NEXTAUTH_PROVIDER_ID || 'oidc',
    name: process.env.NEXTAUTH_PROVIDER_NAME || 'OIDC',
    type: 'oauth',
    wellKnown: process.env.OIDC_CONF_FULL_WELL_KNOWN_URL,
    clientId: process.env.OAUTH2_CLIENT_ID,
    clientSecret: process.env.OAUTH2_CLIENT_SECRET,
    authorization: { params: { scope } },
    checks: ['pkce', 'state'],
    idToken: true,
    profile: (profile) => ({ id: profile.sub, name: profile.name, email: profile.email }),
  };
}

export const authOptions = {
  secret: process.env.NEXTAUTH_SECRET,
  providers: authActive ? [oidcProvider()] : [],
  callbacks: {
    async jwt({ token, account }) {
      if (account) {
        token.accessToken = account.access_token;
        token.expiresAt = account.expires_at;
      }
      return token;
    },
    async session({ session, token }) {
      return { ...session, accessToken: token.accessToken };
    },
  },
};

export default NextAuth(authOptions);
