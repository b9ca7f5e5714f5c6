// Offline after the first visit: every file of the app is cached at install, then served from the cache.
// The build writes precache.json (the file list) and the version below (a hash of all files).
const VERSION = '__VERSION__';
const CACHE = `edgedigits-${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const files = await (await fetch('precache.json', { cache: 'no-store' })).json();
    const cache = await caches.open(CACHE);
    await cache.addAll(['./', 'precache.json', ...files]);
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cached = await caches.match(event.request, { ignoreSearch: true });
    if (cached) return cached;
    try {
      return await fetch(event.request);
    } catch (e) {
      return new Response('offline, and not cached', { status: 503 });
    }
  })());
});
