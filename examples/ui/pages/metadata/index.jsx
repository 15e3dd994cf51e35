// /metadata has no page of its own: it opens the products tab.
export async function getServerSideProps({ locale, defaultLocale }) {
  const prefix = locale && locale !== defaultLocale ? `/${locale}` : '';
  return { redirect: { destination: `${prefix}/metadata/products`, permanent: false } };
}

export default function MetadataIndex() {
  return null;
}
