// connectBus authenticates with each documented MCPQ_NATS_* scheme against a real nats-server
// that requires it: token, nkey seed (text or file), .creds, mutual TLS (CA + client cert/key); a
// missing .creds file and contradictory settings fail naming the setting.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nkeys } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
} from "@nats-io/jwt";
import { startLocalNats, type LocalNats } from "@mcpq/testkit";
import { BusEnvSchema, busAuthFromEnv, connectBus, type Bus } from "../src/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mcpq-bus-auth-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const authFrom = (env: Record<string, string>) => busAuthFromEnv(BusEnvSchema.parse(env));

async function withServer(
  settings: Record<string, unknown>,
  body: (n: LocalNats) => Promise<void>,
): Promise<void> {
  const n = await startLocalNats({ settings });
  try {
    await body(n);
  } finally {
    await n.stop();
  }
}

async function connected(url: string, env: Record<string, string>): Promise<Bus> {
  const bus = await connectBus({ url, name: "auth-test", auth: authFrom(env) });
  expect(bus.nc.info?.jetstream).toBe(true);
  await bus.close();
  return bus;
}

describe("connectBus credentials", () => {
  it("MCPQ_NATS_TOKEN", async () => {
    await withServer({ authorization: { token: "s3cr3t-token" } }, async (n) => {
      await connected(n.url, { MCPQ_NATS_TOKEN: "s3cr3t-token" });
      await expect(connectBus({ url: n.url, name: "anon" })).rejects.toThrow(
        /Authorization Violation/,
      );
      await expect(connected(n.url, { MCPQ_NATS_TOKEN: "wrong" })).rejects.toThrow(
        /Authorization Violation/,
      );
    });
  });

  it("MCPQ_NATS_NKEY_SEED as the seed or as a file holding it", async () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const seedFile = join(dir, "user.nk");
    await writeFile(seedFile, `${seed}\n`, { mode: 0o600 });
    await withServer({ authorization: { users: [{ nkey: user.getPublicKey() }] } }, async (n) => {
      await connected(n.url, { MCPQ_NATS_NKEY_SEED: seed });
      await connected(n.url, { MCPQ_NATS_NKEY_SEED: seedFile });
      const other = new TextDecoder().decode(nkeys.createUser().getSeed());
      await expect(connected(n.url, { MCPQ_NATS_NKEY_SEED: other })).rejects.toThrow(
        /Authorization Violation/,
      );
    });
  });

  it("MCPQ_NATS_TLS_CA with MCPQ_NATS_TLS_CERT/KEY (mutual TLS); refused without the client certificate", async () => {
    const f = (name: string) => join(dir, name);
    const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
    ssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=mcpq-test-ca",
      "-keyout",
      f("ca.key"),
      "-out",
      f("ca.pem"),
    );
    for (const [name, ext] of [
      ["server", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
      ["client", "extendedKeyUsage=clientAuth"],
    ] as const) {
      ssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        `/CN=mcpq-${name}`,
        "-keyout",
        f(`${name}.key`),
        "-out",
        f(`${name}.csr`),
      );
      await writeFile(f(`${name}.ext`), `${ext}\n`);
      ssl(
        "x509",
        "-req",
        "-in",
        f(`${name}.csr`),
        "-CA",
        f("ca.pem"),
        "-CAkey",
        f("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        f(`${name}.ext`),
        "-out",
        f(`${name}.pem`),
      );
    }
    await withServer(
      {
        tls: {
          cert_file: f("server.pem"),
          key_file: f("server.key"),
          ca_file: f("ca.pem"),
          verify: true,
        },
      },
      async (n) => {
        await connected(n.url, {
          MCPQ_NATS_TLS_CA: f("ca.pem"),
          MCPQ_NATS_TLS_CERT: f("client.pem"),
          MCPQ_NATS_TLS_KEY: f("client.key"),
        });
        // The server, not the client, is under test here: a short timeout, no reconnects.
        await expect(
          connect({
            servers: n.url,
            tls: { caFile: f("ca.pem") },
            timeout: 3_000,
            reconnect: false,
          }),
        ).rejects.toThrow();
      },
    );
  });

  it("MCPQ_NATS_CREDS: a .creds file (user JWT + seed) against a server in operator mode", async () => {
    const operator = createOperator();
    const account = createAccount();
    const user = createUser();
    const operatorJwt = await encodeOperator("mcpq-test", operator);
    // JetStream is enabled per account in operator mode: unlimited for the test account.
    const accountJwt = await encodeAccount(
      "mcpq",
      account,
      // Unset JWT limits are 0 (no connections at all): unlimited, JetStream included.
      {
        limits: {
          conn: -1,
          subs: -1,
          data: -1,
          payload: -1,
          imports: -1,
          exports: -1,
          leaf: -1,
          wildcards: true,
          mem_storage: -1,
          disk_storage: -1,
          streams: -1,
          consumer: -1,
        },
      },
      { signer: operator },
    );
    const credsFile = join(dir, "edge.creds");
    await writeFile(
      credsFile,
      fmtCreds(await encodeUser("edge", user, account, { subs: -1, data: -1, payload: -1 }), user),
      {
        mode: 0o600,
      },
    );
    // JetStream in operator mode needs a system account.
    const system = createAccount();
    const systemJwt = await encodeAccount("SYS", system, {}, { signer: operator });
    const settings = {
      operator: operatorJwt,
      system_account: system.getPublicKey(),
      resolver: "MEMORY",
      resolver_preload: {
        [account.getPublicKey()]: accountJwt,
        [system.getPublicKey()]: systemJwt,
      },
    };
    await withServer(settings, async (n) => {
      await connected(n.url, { MCPQ_NATS_CREDS: credsFile });
      await expect(connectBus({ url: n.url, name: "anon" })).rejects.toThrow(
        /Authorization Violation/,
      );
    });
  });

  it("names the setting when a .creds file is missing or settings contradict each other", async () => {
    await expect(
      connectBus({
        url: "nats://127.0.0.1:1",
        name: "x",
        auth: authFrom({ MCPQ_NATS_CREDS: join(dir, "missing.creds") }),
      }),
    ).rejects.toThrow(/MCPQ_NATS_CREDS: cannot read/);
    expect(() => authFrom({ MCPQ_NATS_USER: "edge" })).toThrow(
      /MCPQ_NATS_USER and MCPQ_NATS_PASSWORD/,
    );
    expect(() => authFrom({ MCPQ_NATS_TOKEN: "t", MCPQ_NATS_NKEY_SEED: "SUAX" })).toThrow(
      /only one of MCPQ_NATS_TOKEN, MCPQ_NATS_NKEY_SEED/,
    );
    expect(() => authFrom({ MCPQ_NATS_TLS_CERT: "c.pem" })).toThrow(
      /MCPQ_NATS_TLS_CERT and MCPQ_NATS_TLS_KEY/,
    );
    expect(authFrom({})).toBeUndefined();
  });
});
