export const metadata = {
  title: 'vmkeeper sandbox',
  description: 'Frontend of the vmkeeper sandbox (standard VM replica)',
};

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body style={{ fontFamily: 'system-ui, sans-serif', margin: '2rem' }}>{children}</body>
    </html>
  );
}
