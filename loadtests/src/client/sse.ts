/**
 * Incremental Server-Sent-Events parser (WHATWG rules that matter for MCP): events are
 * separated by a blank line; `data:` lines (one optional leading space stripped) are
 * joined with "\n"; CR, LF and CRLF line endings are accepted; comments (":") ignored.
 */
export class SseParser {
  private buf = "";
  private data: string[] = [];
  private event = "";
  constructor(private readonly onEvent: (data: string, event: string) => void) {}

  push(chunk: string): void {
    this.buf += chunk;
    let start = 0;
    for (;;) {
      let nl = -1;
      let skip = 1;
      for (let i = start; i < this.buf.length; i++) {
        const ch = this.buf.charCodeAt(i);
        if (ch === 10) {
          nl = i;
          break;
        }
        if (ch === 13) {
          if (i + 1 >= this.buf.length) {
            // CR at end of buffer: wait to see whether LF follows
            nl = -1;
            break;
          }
          nl = i;
          if (this.buf.charCodeAt(i + 1) === 10) skip = 2;
          break;
        }
      }
      if (nl < 0) break;
      this.line(this.buf.slice(start, nl));
      start = nl + skip;
      skip = 1;
    }
    this.buf = this.buf.slice(start);
  }

  private line(l: string): void {
    if (l.length === 0) {
      if (this.data.length > 0) this.onEvent(this.data.join("\n"), this.event || "message");
      this.data = [];
      this.event = "";
      return;
    }
    if (l.charCodeAt(0) === 58 /* : */) return;
    const c = l.indexOf(":");
    const field = c < 0 ? l : l.slice(0, c);
    let value = c < 0 ? "" : l.slice(c + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
  }

  /** Flush a final event not followed by a blank line (stream ended). */
  end(): void {
    if (this.buf.length > 0) {
      this.line(this.buf);
      this.buf = "";
    }
    this.line("");
  }
}
