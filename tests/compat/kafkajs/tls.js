// kafkajs over an SSL listener with a client certificate (mTLS): admin createTopics and
// describeCluster, produce, a consumer group that reads the records back (common.js).
// Usage: node tls.js BOOTSTRAP CA_PEM CERT_PEM KEY_PEM TOPIC. Prints one JSON line of
// findings; exits non-zero on error.
const { pem, client, roundTrip, report, run } = require('./common');

const [bootstrap, caFile, certFile, keyFile, topic] = process.argv.slice(2);

run(async () => {
  const kafka = client('kjs-tls', bootstrap, 2, {
    ssl: { ca: [pem(caFile)], cert: pem(certFile), key: pem(keyFile) },
  });
  report(await roundTrip(kafka, topic, 'kjs-tls'));
});
