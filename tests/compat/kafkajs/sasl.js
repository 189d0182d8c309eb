// kafkajs over a SASL_SSL listener: SASL PLAIN or SCRAM-SHA-256/512 inside TLS. admin
// createTopics and describeCluster, produce, a consumer group that reads the records back.
// Usage: node sasl.js BOOTSTRAP CA_PEM MECHANISM USER PASSWORD TOPIC [--refused]
// (CA_PEM `-`: no TLS, for a SASL_PLAINTEXT listener)
// (MECHANISM as kafkajs spells it: plain, scram-sha-256, scram-sha-512). Prints one JSON line
// of findings. With --refused the admin client must fail to connect: prints the error's
// name, type and message and exits 0 (1 if it got in).
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, caFile, mechanism, username, password, topic, mode] = process.argv.slice(2);

function client(retries) {
  return new Kafka({
    clientId: 'kjs-sasl',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    authenticationTimeout: 5000,
    requestTimeout: 10000,
    retry: { retries },
    ssl: caFile === '-' ? false : { ca: [fs.readFileSync(caFile, 'utf8')] },
    sasl: { mechanism, username, password },
  });
}

async function refused() {
  const admin = client(0).admin();
  try {
    await admin.connect();
    await admin.listTopics();
  } catch (e) {
    const cause = e.originalError || e.cause || {};
    console.log(JSON.stringify({
      refused: true,
      name: e.name,
      type: e.type || cause.type || null,
      message: e.message,
    }));
    return;
  } finally {
    await admin.disconnect().catch(() => {});
  }
  console.error(`${mechanism} ${username}: connected and listed topics; expected a refusal`);
  process.exit(1);
}

async function roundTrip() {
  const kafka = client(2);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
  const cluster = await admin.describeCluster();
  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `kjs-sasl-${i}` }));
  await producer.send({ topic, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `${topic}-group`, sessionTimeout: 10000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length}/10 consumed`)), 20000);
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(`${message.key.toString()}=${message.value.toString()}`);
        if (got.length >= messages.length) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  await admin.disconnect();
  console.log(JSON.stringify({
    brokers: cluster.brokers.map((b) => `${b.host}:${b.port}`),
    got: got.sort(),
  }));
}

(mode === '--refused' ? refused() : roundTrip())
  .catch((e) => { console.error(e); process.exit(1); });
