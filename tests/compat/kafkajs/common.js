// What the kafkajs security scripts (sasl.js, tls.js) share: the client, the produce/consume
// round trip, and how a script reports its findings or its failure.
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

// The text of a PEM file.
function pem(file) {
  return fs.readFileSync(file, 'utf8');
}

// A Kafka client for one bootstrap address: kafkajs's logging off, 5 s to connect, 10 s per
// request, `retries` retries; `options` (ssl, sasl, ...) are added to that configuration.
function client(clientId, bootstrap, retries, options = {}) {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 10000,
    retry: { retries },
    ...options,
  });
}

// admin createTopics (2 partitions) and describeCluster, produce 10 records (key `k<i>`,
// value `<prefix>-<i>`), a consumer group that reads them back. Resolves to the findings:
// { brokers: ['host:port', ...], got: ['k<i>=<value>', ...] sorted }.
async function roundTrip(kafka, topic, prefix) {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
  const cluster = await admin.describeCluster();
  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `${prefix}-${i}` }));
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
  return {
    brokers: cluster.brokers.map((b) => `${b.host}:${b.port}`),
    got: got.sort(),
  };
}

// Prints the findings as one JSON line.
function report(findings) {
  console.log(JSON.stringify(findings));
}

// Runs the async `main`; if it fails, prints the error to stderr and exits 1.
function run(main) {
  main().catch((e) => { console.error(e); process.exit(1); });
}

module.exports = { pem, client, roundTrip, report, run };
