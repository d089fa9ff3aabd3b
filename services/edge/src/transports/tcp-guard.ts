/**
 * Whether the first line sent to the raw TCP port looks like an HTTP request line
 * (`POST / HTTP/1.1`) or its start. A JSON-RPC message starts with `{`; an HTTP request is what
 * a web page reaches the port with (fetch to 127.0.0.1:8090), and TCP has no Host or Origin to
 * check, so such a connection is refused before any line of it runs.
 */
export function looksLikeHttp(line: string): boolean {
  const t = line.trimStart();
  if (t.startsWith("{") || t.startsWith("[")) return false;
  return /^[A-Z]{3,10} /.test(t) || /\sHTTP\/\d/.test(t) || /^PRI \* HTTP\/2/.test(t);
}
