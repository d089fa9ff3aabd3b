import { createHash } from "node:crypto";
import { z } from "zod";
import { ErrorCode, McpError } from "@mcpq/protocol";
import {
  RequestStateError,
  canonicalJson,
  type RequestStateBinding,
  type RequestStateSealer,
} from "./request-state.js";

/**
 * Multi round-trip requests (MCP 2026-07-28 MRTR) on the worker side.
 *
 * A handler keeps calling `ctx.elicit()`, `ctx.sample()` and `ctx.listRoots()`. In the modern era
 * each call is an *input request* under a key: when the retry carries the answer (in
 * `inputResponses`, or from an earlier round inside the sealed `requestState`), the call resolves
 * with it; otherwise it rejects with `InputRequiredSignal` and, once the handler has settled, the
 * round ends with `{ resultType: "input_required", inputRequests, requestState }` listing every
 * input request still unanswered (start several together, e.g. with `Promise.all`, to ask them in
 * one round). The handler runs again from the top on each retry, on whichever worker gets it;
 * answers it already has return at once, so work before an ask should be cheap or idempotent.
 */

/** The requests for which MRTR is allowed (InputRequiredResult on anything else is forbidden). */
export const MRTR_METHODS: ReadonlySet<string> = new Set([
  "tools/call",
  "resources/read",
  "prompts/get",
]);

export type InputMethod = "elicitation/create" | "sampling/createMessage" | "roots/list";

/** The client capability each input request needs (never ask what the client did not declare). */
export const CAPABILITY_OF: Readonly<Record<InputMethod, string>> = {
  "sampling/createMessage": "sampling",
  "elicitation/create": "elicitation",
  "roots/list": "roots",
};

/** `MissingRequiredClientCapabilityError` (2026-07-28); HTTP edges answer it with 400. */
const MISSING_REQUIRED_CLIENT_CAPABILITY = -32021;

/** Default key prefix of an input request, per method, numbered in call order (`elicit-1`, ...). */
const KEY_PREFIX: Readonly<Record<InputMethod, string>> = {
  "elicitation/create": "elicit",
  "sampling/createMessage": "sample",
  "roots/list": "roots",
};

/** Bounds on one round, so a handler in a loop cannot build an unbounded result or state. */
const MAX_INPUT_REQUESTS = 32;
const MAX_KEY_LENGTH = 128;

/** Rejection of an unanswered input request; the worker turns the round into `input_required`. */
class InputRequiredSignal extends Error {
  constructor(readonly key: string) {
    super(`input required: ${key}`);
    this.name = "InputRequiredSignal";
  }
}

const plainObject = z.record(z.string(), z.unknown());
/** Result shapes per input method (loose: extra fields are the client's business). */
const RESPONSE_SCHEMA: Readonly<Record<InputMethod, z.ZodType>> = {
  "elicitation/create": z.looseObject({
    action: z.enum(["accept", "decline", "cancel"]),
    content: plainObject.optional(),
  }),
  "sampling/createMessage": z.looseObject({
    role: z.enum(["user", "assistant"]),
    content: z.union([plainObject, z.array(plainObject)]),
    model: z.string(),
  }),
  "roots/list": z.looseObject({ roots: z.array(z.looseObject({ uri: z.string() })) }),
};

/**
 * One input request as the sealed state remembers it: its method. The key names the question
 * across rounds; its params are not compared (a handler may word a question differently on a
 * re-run, e.g. with a timestamp, and must still get its answer).
 */
interface AskRecord {
  m: InputMethod;
}
interface Answer extends AskRecord {
  r: Record<string, unknown>;
}
/** The data sealed into `requestState`: round number, answers so far, what this round asked. */
interface StateData {
  n: number;
  a: Record<string, Answer>;
  q: Record<string, AskRecord>;
}

/** Whether `value` is a well-formed result of the input request `method` (also for task input, tasks.ts). */
export function isInputResponse(method: InputMethod, value: unknown): boolean {
  return RESPONSE_SCHEMA[method].safeParse(value).success;
}

/** Default key of the `n`-th input request of `method` in one run (`elicit-1`, ...). */
export function defaultInputKey(method: InputMethod, n: number): string {
  return `${KEY_PREFIX[method]}-${n}`;
}

/** `MissingRequiredClientCapabilityError` for an input request the client cannot answer. */
export function missingCapability(method: InputMethod): McpError {
  const capability = CAPABILITY_OF[method];
  return new McpError(
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    `Client does not support ${method} (no ${capability} capability)`,
    { requiredCapabilities: { [capability]: {} } },
  );
}

const InputMethodSchema = z.enum(["elicitation/create", "sampling/createMessage", "roots/list"]);
const StateDataSchema = z.object({
  n: z.number().int().nonnegative(),
  a: z.record(z.string(), z.object({ m: InputMethodSchema, r: plainObject })),
  q: z.record(z.string(), z.object({ m: InputMethodSchema })),
});

function invalid(message: string): McpError {
  return new McpError(ErrorCode.InvalidParams, message);
}

/** The answers a request carries and the input requests its handler makes, for one round. */
export class MrtrRound {
  /** Answers from earlier rounds (verified state). */
  readonly #fromState: Record<string, Answer>;
  /** What the round that minted the state asked; undefined on a first round (no state). */
  readonly #prevAsked: Record<string, AskRecord> | undefined;
  readonly #fresh: Record<string, Record<string, unknown>>;
  readonly #round: number;
  /** Answers taken from this request's `inputResponses`, carried into the next state. */
  readonly #answeredNow: Record<string, Answer> = {};
  readonly #pending = new Map<
    string,
    { method: InputMethod; params: Record<string, unknown> | undefined }
  >();
  readonly #seen = new Map<string, string>();
  readonly #counters = new Map<InputMethod, number>();
  #fatal: McpError | undefined;
  /** The verified `requestState` this round continues from (single use: the worker claims it). */
  stateToken: string | undefined;

  private constructor(
    private readonly sealer: RequestStateSealer,
    private readonly binding: RequestStateBinding,
    private readonly capabilities: readonly string[] | undefined,
    state: StateData | undefined,
    fresh: Record<string, Record<string, unknown>>,
  ) {
    this.#fromState = state?.a ?? {};
    this.#prevAsked = state?.q;
    this.#round = state?.n ?? 0;
    this.#fresh = fresh;
  }

  /**
   * Reads `inputResponses` and `requestState` from a request's params. Throws -32602 for a
   * malformed `inputResponses` (not an object of objects), a `requestState` that is not a string,
   * or one that fails verification (tampered, another principal/request, expired).
   */
  static begin(
    params: Record<string, unknown>,
    binding: RequestStateBinding,
    sealer: RequestStateSealer,
    capabilities: readonly string[] | undefined,
    onRefused?: (reason: string) => void,
  ): MrtrRound {
    const rawResponses = params["inputResponses"];
    let fresh: Record<string, Record<string, unknown>> = {};
    if (rawResponses !== undefined) {
      const r = z.record(z.string(), plainObject).safeParse(rawResponses);
      if (!r.success)
        throw invalid(
          "Invalid params: inputResponses must be an object mapping each input request key to its result object",
        );
      fresh = r.data;
    }
    let state: StateData | undefined;
    const rawState = params["requestState"];
    if (rawState !== undefined) {
      if (typeof rawState !== "string")
        throw invalid("Invalid params: requestState must be a string");
      try {
        const parsed = StateDataSchema.safeParse(sealer.open(rawState, binding));
        if (!parsed.success) throw new RequestStateError("malformed");
        state = parsed.data as StateData;
      } catch (err) {
        if (!(err instanceof RequestStateError)) throw err;
        onRefused?.(err.reason);
        throw invalid("Invalid or expired requestState");
      }
    }
    const round = new MrtrRound(sealer, binding, capabilities, state, fresh);
    if (state) round.stateToken = rawState as string;
    return round;
  }

  /** How many `input_required` rounds came before this one (from the verified state; 0 without one). */
  get number(): number {
    return this.#round;
  }

  /** True when some input request of this run is unanswered: the round ends with `input_required`. */
  get pending(): boolean {
    return this.#pending.size > 0;
  }

  /** An error found while asking (an invalid answer, a handler bug): it wins over the handler's outcome. */
  get fatal(): McpError | undefined {
    return this.#fatal;
  }

  /**
   * One input request. Resolves with the client's result when this request (or an earlier round)
   * answered `key`; rejects with -32021 when the client lacks the capability, with -32602 when the
   * answer is malformed, and otherwise with `InputRequiredSignal` (the request is then asked).
   */
  ask(
    method: InputMethod,
    params: Record<string, unknown> | undefined,
    key?: string,
  ): Promise<Record<string, unknown>> {
    if (this.capabilities && !this.capabilities.includes(CAPABILITY_OF[method]))
      return Promise.reject(missingCapability(method));
    const n = (this.#counters.get(method) ?? 0) + 1;
    this.#counters.set(method, n);
    const k = key ?? defaultInputKey(method, n);
    if (k.length === 0 || k.length > MAX_KEY_LENGTH)
      return this.#fail(
        ErrorCode.InternalError,
        `input request key must be 1-${MAX_KEY_LENGTH} characters`,
      );
    const h = createHash("sha256")
      .update(canonicalJson({ method, params: params ?? {} }))
      .digest("base64url")
      .slice(0, 22);
    const seen = this.#seen.get(k);
    if (seen !== undefined && seen !== h)
      return this.#fail(
        ErrorCode.InternalError,
        `input request key ${JSON.stringify(k)} used for two different requests`,
      );
    this.#seen.set(k, h);

    const prior = this.#fromState[k];
    if (prior && prior.m === method) return Promise.resolve(prior.r);
    const fresh = this.#fresh[k];
    // With a state, only answers to what the previous round asked count; without one (a first
    // round), an answer under the key is taken as it is (the client answers either way).
    const expected = this.#prevAsked === undefined || this.#prevAsked[k]?.m === method;
    if (fresh && expected) {
      const checked = RESPONSE_SCHEMA[method].safeParse(fresh);
      if (!checked.success)
        return this.#fail(
          ErrorCode.InvalidParams,
          `Invalid params: inputResponses[${JSON.stringify(k)}] is not a valid ${method} result`,
        );
      this.#answeredNow[k] = { m: method, r: fresh };
      return Promise.resolve(fresh);
    }
    if (!this.#pending.has(k) && this.#pending.size >= MAX_INPUT_REQUESTS) {
      return this.#fail(
        ErrorCode.InternalError,
        `more than ${MAX_INPUT_REQUESTS} input requests in one round`,
      );
    }
    this.#pending.set(k, { method, params });
    const signal = Promise.reject(new InputRequiredSignal(k));
    // Marked handled: a handler that never awaits its ask must not crash the process.
    signal.catch(() => undefined);
    return signal;
  }

  /**
   * Rejects the ask and makes the error the request's answer whatever the handler does next: a
   * malformed answer (-32602) or a handler bug (-32603) cannot be fixed by asking the client.
   */
  #fail(code: number, message: string): Promise<never> {
    this.#fatal ??= new McpError(code, message);
    return Promise.reject(this.#fatal);
  }

  /** The `InputRequiredResult` of this round: every unanswered input request and the sealed state. */
  inputRequired(): Record<string, unknown> {
    const inputRequests: Record<string, unknown> = {};
    const q: Record<string, AskRecord> = {};
    for (const [k, a] of this.#pending) {
      inputRequests[k] = { method: a.method, params: a.params ?? {} };
      q[k] = { m: a.method };
    }
    const data: StateData = {
      n: this.#round + 1,
      a: { ...this.#answeredNow, ...this.#fromState },
      q,
    };
    let requestState: string;
    try {
      requestState = this.sealer.seal(this.binding, data);
    } catch (err) {
      if (err instanceof RequestStateError)
        throw new McpError(ErrorCode.InternalError, "Request state too large");
      throw err;
    }
    return { resultType: "input_required", inputRequests, requestState };
  }
}
