// kafkajs over an SSL listener with a client certificate (mTLS): admin createTopics and
// describeCluster, produce, a consumer group that reads the records back.
// Usage: node tls.js BOOTSTRAP CA_PEM CERT_PEM KEY_PEM TOPIC. Prints one JSON line of
// findings; exits non-zero on error.
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, caFile, certFile, keyFile, topic] = process.argv.slice(2);

(async () => {
  const kafka = new Kafka({
    clientId: 'kjs-tls',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 10000,
    retry: { retries: 2 },
    ssl: {
      ca: [fs.readFileSync(caFile, 'utf8')],
      cert: fs.readFileSync(certFile, 'utf8'),
      key: fs.readFileSync(keyFile, 'utf8'),
    },
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
  const cluster = await admin.describeCluster();
  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `kjs-tls-${i}` }));
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
})().catch((e) => { console.error(e); process.exit(1); });
