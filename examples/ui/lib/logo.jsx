// The header logo: a plain text mark (no image assets to ship).
export function appLogo(navigationHeight) {
  return (
    <a href="/" style={{ display: 'flex', alignItems: 'center', height: navigationHeight,
      fontWeight: 700, fontSize: 18, color: 'inherit', textDecoration: 'none' }}>
      orchestrator
    </a>
  );
}
