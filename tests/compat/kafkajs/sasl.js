// kafkajs over a SASL_SSL listener: SASL PLAIN or SCRAM-SHA-256/512 inside TLS. admin
// createTopics and describeCluster, produce, a consumer group that reads the records back
// (common.js).
// Usage: node sasl.js BOOTSTRAP CA_PEM MECHANISM USER PASSWORD TOPIC [--refused]
// (CA_PEM `-`: no TLS, for a SASL_PLAINTEXT listener)
// (MECHANISM as kafkajs spells it: plain, scram-sha-256, scram-sha-512, oauthbearer; for
// oauthbearer PASSWORD is the bearer token and USER is ignored). Prints one JSON line
// of findings. With --refused the admin client must fail to connect: prints the error's
// name, type and message and exits 0 (1 if it got in).
const { pem, client, roundTrip, report, run } = require('./common');

const [bootstrap, caFile, mechanism, username, password, topic, mode] = process.argv.slice(2);

function saslClient(retries) {
  return client('kjs-sasl', bootstrap, retries, {
    authenticationTimeout: 5000,
    ssl: caFile === '-' ? false : { ca: [pem(caFile)] },
    sasl: mechanism === 'oauthbearer'
      ? { mechanism, oauthBearerProvider: async () => ({ value: password }) }
      : { mechanism, username, password },
  });
}

async function refused() {
  const admin = saslClient(0).admin();
  try {
    await admin.connect();
    await admin.listTopics();
  } catch (e) {
    const cause = e.originalError || e.cause || {};
    report({
      refused: true,
      name: e.name,
      type: e.type || cause.type || null,
      message: e.message,
    });
    return;
  } finally {
    await admin.disconnect().catch(() => {});
  }
  console.error(`${mechanism} ${username}: connected and listed topics; expected a refusal`);
  process.exit(1);
}

run(mode === '--refused' ? refused
  : async () => report(await roundTrip(saslClient(2), topic, 'kjs-sasl')));
