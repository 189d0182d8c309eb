// kafkajs against Shoal: admin createTopics, gzip produce, a consumer group that commits, a
// second consumer in the same group that resumes after the commit, describeGroup.
// Usage: node group.js BOOTSTRAP. Prints one JSON line of findings; exits non-zero on error.
const { Kafka, logLevel, CompressionTypes } = require('kafkajs');

const bootstrap = process.argv[2] || '127.0.0.1:9092';
const topic = `kjs-${Date.now()}`;

async function consumeUntil(kafka, groupId, n) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length}/${n} consumed`)), 30000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: Number(message.offset), value: message.value.toString() });
        if (got.length >= n) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  return got;
}

(async () => {
  const kafka = new Kafka({ clientId: 'kjs', brokers: [bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 5}`, value: `v${i}` }));
  await producer.send({ topic, compression: CompressionTypes.GZIP, messages });
  const first = await consumeUntil(kafka, 'kjs-group', 30);
  await producer.send({ topic, messages: [{ key: 'k0', value: 'after-commit' }] });
  const second = await consumeUntil(kafka, 'kjs-group', 1);
  const offsets = await admin.fetchOffsets({ groupId: 'kjs-group', topics: [topic] });
  const described = await admin.describeGroups(['kjs-group']);
  await producer.disconnect();
  await admin.disconnect();
  console.log(JSON.stringify({
    first: first.map((m) => m.value).sort(),
    second: second.map((m) => m.value),
    committed: offsets[0].partitions.reduce((s, p) => s + Number(p.offset), 0),
    state: described.groups[0].state,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
