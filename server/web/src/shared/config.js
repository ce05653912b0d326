// What the server tells its pages (embedded in the HTML by ysync.server.demo):
// {auth: "none" | "jwt", devTokens: bool, pathPrefix: "/", features: [...]}.
// URLs are built from the page's <base href>, so the pages work when ysync is
// mounted under a prefix in a host app.

export const config = JSON.parse(document.getElementById('ysync-config').textContent)

/** An HTTP URL of this ysync app, e.g. httpUrl('api/rooms'). */
export const httpUrl = (path) => new URL(path, document.baseURI).href

/** The y-websocket server URL: the provider appends `/<room>`. */
export const wsServerUrl = () => {
  const root = httpUrl('.').replace(/^http/, 'ws').replace(/\/$/, '')
  return root + config.pathPrefix.replace(/\/$/, '')
}

/** Room names as the picker accepts them: letters, digits and . _ - / (the URL path is the room). */
export const cleanRoomName = (raw) =>
  String(raw ?? '').trim().replace(/[^A-Za-z0-9._/-]+/g, '-').replace(/^\/+|\/+$/g, '').slice(0, 200)
