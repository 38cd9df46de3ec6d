import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { InspectionEvent, Observer } from 'xstate';
import { ValidationError } from '../errors.js';

export interface StatelyInspection {
  /** Pass as `inspect` to the orchestrator (`OrchestratorFactory.create(…, { inspect })`). */
  observer: Observer<InspectionEvent>;
  /** Whether a connection to the inspector is open now. */
  readonly connected: boolean;
  close(): Promise<void>;
}

export interface StatelyInspectionOptions {
  url: string;
  logger: Logger;
  /** Reconnection attempts after the connection drops, before giving up (default 5). */
  maxReconnects?: number;
  /** Events kept while not connected (the oldest are dropped; default 1 000). */
  maxBuffered?: number;
  /** Time allowed to connect (default 3 000 ms). */
  connectTimeoutMs?: number;
}

/**
 * Streams the actors' inspection events, in the Stately format (`@statelyai/inspect`),
 * to an inspector listening on a WebSocket. Off the hot path: an actor only queues the
 * raw event; serialisation and sending happen later, in batches. Gives up cleanly: if
 * nothing listens at start, it says so and inspection stays off; if the connection
 * drops, it tries a few times, then stops (the library's own adapter retries for ever).
 */
export async function connectStatelyInspector(options: StatelyInspectionOptions): Promise<StatelyInspection | null> {
  const { url, logger } = options;
  if (!/^wss?:\/\/[^/\s]+/.test(url)) throw new ValidationError(`--inspect expects a ws:// or wss:// URL, got ${url}`);
  const maxBuffered = options.maxBuffered ?? 1000;
  const maxReconnects = options.maxReconnects ?? 5;
  const timeoutMs = options.connectTimeoutMs ?? 3000;

  let socket: WebSocket | null = await open(url, timeoutMs).catch((err: Error) => {
    logger.warn({ err, url }, 'no Stately inspector listening: inspection is off');
    return null;
  });
  if (!socket) return null;
  logger.info({ url }, 'streaming actor inspection to the Stately inspector');

  let closed = false;
  let reconnects = 0;
  const outbox: string[] = [];
  const send = (text: string) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(text);
    else if (!closed) {
      outbox.push(text);
      if (outbox.length > maxBuffered) outbox.shift();
    }
  };
  const watch = (ws: WebSocket) => {
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (closed) return;
      socket = null;
      if (reconnects >= maxReconnects) {
        logger.warn({ url }, 'Stately inspector connection lost: inspection is off');
        closed = true;
        outbox.length = 0;
        return;
      }
      reconnects++;
      setTimeout(() => {
        if (closed) return;
        open(url, timeoutMs)
          .then((next) => {
            socket = next;
            reconnects = 0;
            watch(next);
            for (const text of outbox.splice(0)) next.send(text);
          })
          .catch(() => watch(new FakeClosed() as unknown as WebSocket));
      }, 500 * reconnects).unref();
    });
  };
  watch(socket);

  const inspector = createInspector({ send: (event: StatelyInspectionEvent) => send(JSON.stringify(event)) }, { autoStart: true });
  const pending: InspectionEvent[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    for (const event of pending.splice(0)) {
      try {
        inspector.inspect.next?.(event);
      } catch (err) {
        logger.debug({ err }, 'inspection event dropped');
      }
    }
  };
  const observer: Observer<InspectionEvent> = {
    next: (event) => {
      if (closed) return;
      pending.push(event);
      if (pending.length > maxBuffered) pending.shift();
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
  return {
    observer,
    get connected() {
      return socket?.readyState === WebSocket.OPEN;
    },
    async close() {
      flush();
      closed = true;
      const s = socket;
      socket = null;
      if (s && s.readyState === WebSocket.OPEN) {
        await new Promise<void>((resolve) => {
          s.once('close', () => resolve());
          s.close();
          setTimeout(resolve, 1000).unref();
        });
      }
    },
  };
}

function open(url: string, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs });
    ws.once('open', () => resolve(ws));
    ws.once('error', (err) => reject(err));
  });
}

/** Stands for a connection attempt that failed, so the close handler counts it. */
class FakeClosed {
  on(event: string, fn: () => void): void {
    if (event === 'close') setImmediate(fn);
  }
}
