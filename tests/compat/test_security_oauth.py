"""SASL/OAUTHBEARER with real clients (KIP-255, KIP-768).

The module's broker validates tokens with the KIP-768 validator: RS256 JWTs checked against a
JWKS file (`sasl.oauthbearer.jwks.endpoint.url=file://...`), audience `shoal`, issuer
`https://idp.shoal.test`. Tokens are signed here with the `openssl` CLI, like an identity
provider would. Listeners: PLAINTEXT (where `shoal acl` talks, as the super user
User:ANONYMOUS), SASL_PLAINTEXT and SASL_SSL, both OAUTHBEARER only. ACLs are on with
`allow.everyone.if.no.acl.found=true`; on the `oauth-acl` prefix everyone is allowed and
User:mallory denied, which proves the token's `sub` is the principal.

Clients: kafka-python (`sasl_oauth_token_provider`), confluent-kafka (`oauth_cb`), kafkajs
(`oauthBearerProvider`), and kcat with librdkafka's own unsecured JWT
(`enable.sasl.oauthbearer.unsecure.jwt`) against a second broker that keeps Kafka's default
unsecured validator. Refusals: expired, wrong audience, wrong issuer, signed by another key,
unsigned; each client gets the broker's `{"status":"invalid_token"}`.
"""

import base64
import json
import pathlib
import subprocess
import time

import confluent_kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider

from conftest import discard, shoal_bin, start_broker
from tls_pki import (confluent_consume, failed_authentications, kafka_python_conf,
                     kafka_python_consume, librdkafka_conf, openssl, refused_confluent,
                     refused_kafka_python, run_kafkajs, run_kcat, temporary_pki)

AUDIENCE, ISSUER = "shoal", "https://idp.shoal.test"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """An RS256 key made with openssl in `root`; `jwks()` is its public JWK set."""

    def __init__(self, root, name, kid):
        self.root, self.kid = pathlib.Path(root), kid
        self.key = self.root / f"{name}.key"
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", str(self.key), cwd=root)
        modulus = subprocess.run(["openssl", "rsa", "-in", str(self.key), "-noout", "-modulus"],
                                 capture_output=True, text=True, check=True).stdout
        self.n = bytes.fromhex(modulus.strip().split("=", 1)[1])

    def jwks(self):
        return {"keys": [{"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                          "n": b64url(self.n), "e": "AQAB"}]}

    def token(self, sub, lifetime_s=600, **claims):
        """A signed JWT for `sub` valid `lifetime_s` seconds (negative: already expired), with
        this module's audience and issuer unless `claims` replace them. Returns it as text."""
        now = int(time.time())
        body = {"sub": sub, "iat": now - 5, "exp": now + lifetime_s, "aud": AUDIENCE,
                "iss": ISSUER, "scope": "kafka"}
        body.update(claims)
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), capture_output=True, check=True).stdout
        return f"{signing_input}.{b64url(sig)}"


def unsigned(sub):
    """An unsecured JWS (`alg` none) for `sub`, valid 10 minutes."""
    now = int(time.time())
    return (f"{b64url(json.dumps({'alg': 'none'}).encode())}."
            f"{b64url(json.dumps({'sub': sub, 'iat': now, 'exp': now + 600}).encode())}.")


@pytest.fixture(scope="module")
def oauth():
    with temporary_pki("shoal-oauth-pki-", "Shoal OAuth Test CA") as pki:
        signer = Signer(pki.root, "idp", "idp-1")
        other = Signer(pki.root, "rogue", "idp-1")   # same kid, another key
        jwks = pathlib.Path(pki.root) / "jwks.json"
        jwks.write_text(json.dumps(signer.jwks()))
        b = start_broker({
            "group.initial.rebalance.delay.ms": 0,
            "ssl.keystore.location": pki.keystore,
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            "sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
            "sasl.oauthbearer.expected.audience": AUDIENCE,
            "sasl.oauthbearer.expected.issuer": ISSUER,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "true",
            "super.users": "User:ANONYMOUS",
            "connection.failed.authentication.delay.ms": 50,
        }, prefix="shoal-oauth-", listeners={"sasl": "SASL_PLAINTEXT", "ssl": "SASL_SSL"},
            http=True)
        b.ca, b.signer, b.other = pki.ca, signer, other
        try:
            # Topics under `oauth-acl`: everyone allowed but mallory (a DENY wins); other
            # topics have no ACL, so allow.everyone.if.no.acl.found lets every user in.
            for principal, deny in (("User:*", []), ("User:mallory", ["--deny"])):
                r = subprocess.run([shoal_bin(), "acl", "add", "--bootstrap-server", b.bootstrap,
                                    "--principal", principal, *deny, "--operation", "all",
                                    "--topic", "oauth-acl", "--pattern-type", "prefixed"],
                                   capture_output=True, text=True, timeout=30)
                assert r.returncode == 0, r.stderr
        except BaseException:
            discard(b)
            raise
        try:
            yield b
        finally:
            b.finish()


class Provider(AbstractTokenProvider):
    def __init__(self, token):
        super().__init__()
        self._token = token

    def token(self):
        return self._token

    def extensions(self):
        return {"traceId": "kafka-python"}


def kpy(b, protocol, token, **extra):
    bootstrap = b.ssl_bootstrap if protocol == "SASL_SSL" else b.sasl_bootstrap
    return kafka_python_conf(bootstrap, protocol, ca=b.ca if protocol == "SASL_SSL" else None,
                             sasl_mechanism="OAUTHBEARER",
                             sasl_oauth_token_provider=Provider(token), **extra)


def ck(b, protocol, token, **extra):
    bootstrap = b.ssl_bootstrap if protocol == "SASL_SSL" else b.sasl_bootstrap
    conf = librdkafka_conf(bootstrap, protocol, ca=b.ca if protocol == "SASL_SSL" else None,
                           **{"sasl.mechanisms": "OAUTHBEARER"}, **extra)
    conf["oauth_cb"] = lambda _config: (token, time.time() + 600)
    return conf


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_kafka_python_with_a_signed_token(oauth, protocol):
    topic = f"oauth-kpy-{protocol.lower()}"
    token = oauth.signer.token("alice")
    producer = KafkaProducer(**kpy(oauth, protocol, token))
    for i in range(10):
        producer.send(topic, key=f"k{i}".encode(), value=f"kpy-{i}".encode())
    producer.flush(20)
    producer.close()
    consumer = KafkaConsumer(topic, **kpy(oauth, protocol, token, group_id=f"{topic}-g",
                                          auto_offset_reset="earliest"))
    got = kafka_python_consume(consumer, 10)
    consumer.close()
    assert got == {f"k{i}": f"kpy-{i}" for i in range(10)}


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_confluent_kafka_with_oauth_cb(oauth, protocol):
    topic = f"oauth-ck-{protocol.lower()}"
    token = oauth.signer.token("alice")
    p = confluent_kafka.Producer(ck(oauth, protocol, token))
    errors = []
    for i in range(10):
        p.produce(topic, key=f"k{i}", value=f"ck-{i}",
                  on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(20) == 0
    assert errors == []
    c = confluent_kafka.Consumer(ck(oauth, protocol, token, **{
        "group.id": f"{topic}-g", "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = confluent_consume(c, 10)
    c.close()
    assert sorted(got) == sorted((f"k{i}", f"ck-{i}") for i in range(10))


def test_the_tokens_subject_is_the_principal_acls_see(oauth):
    """mallory's valid token authenticates, and the DENY ACL on User:mallory refuses her
    produce with TOPIC_AUTHORIZATION_FAILED while alice's goes through."""
    results = {}
    for user in ("alice", "mallory"):
        p = confluent_kafka.Producer(ck(oauth, "SASL_SSL", oauth.signer.token(user),
                                        **{"message.timeout.ms": 10000}))
        got = []
        p.produce("oauth-acl", value=user, on_delivery=lambda e, m: got.append(e))
        p.flush(15)
        results[user] = got
    assert results["alice"] == [None]
    assert [e.code() for e in results["mallory"]] == [
        confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED], results


def refusals(b):
    """How many tokens the broker has refused so far (its log's count)."""
    return pathlib.Path(b.logs[-1]).read_text(errors="replace").count("OAUTHBEARER token refused")


def bad_tokens(b):
    return {
        "expired": b.signer.token("alice", lifetime_s=-120),
        "wrong audience": b.signer.token("alice", aud="someone-else"),
        "wrong issuer": b.signer.token("alice", iss="https://evil.test"),
        "another key": b.other.token("alice"),
        "unsigned": unsigned("alice"),
    }


def test_bad_tokens_are_refused_with_invalid_token(oauth):
    context = None
    before = failed_authentications(oauth, context)
    for name, token in bad_tokens(oauth).items():
        errors, log = refused_confluent(f"oauth-{name}", ck(oauth, "SASL_SSL", token))
        text = " ".join(t for _, t in errors) + log
        assert "invalid_token" in text, (name, errors, log)
        assert any(code == confluent_kafka.KafkaError._AUTHENTICATION for code, _ in errors), \
            (name, errors)
    # kafka-python answers the challenge with \x01 but only logs it at DEBUG, then sees the
    # connection close: it fails to bootstrap, and the broker logged why.
    for name in ("expired", "another key"):
        seen = refusals(oauth)
        error, log = refused_kafka_python(f"oauth-kpy-{name}",
                                          kpy(oauth, "SASL_PLAINTEXT", bad_tokens(oauth)[name]))
        assert "bootstrap" in str(error).lower(), (name, error, log)
        assert refusals(oauth) > seen, name
    assert failed_authentications(oauth, context) >= before + 7


def test_kafkajs_with_an_oauth_bearer_provider(oauth):
    topic = "oauth-kjs"
    found = run_kafkajs("sasl.js", oauth.ssl_bootstrap, oauth.ca, "oauthbearer", "-",
                        oauth.signer.token("alice"), topic)
    assert found["brokers"] == [oauth.ssl_bootstrap]
    assert found["got"] == sorted(f"k{i}=kjs-sasl-{i}" for i in range(10))
    # kafkajs does not answer the error challenge: it sends its next request, which the
    # broker refuses by closing the connection (as Kafka does); the broker logged why.
    seen = refusals(oauth)
    refused = run_kafkajs("sasl.js", oauth.ssl_bootstrap, oauth.ca, "oauthbearer", "-",
                          oauth.signer.token("alice", lifetime_s=-120), topic, "--refused")
    assert refused["refused"], refused
    assert refusals(oauth) > seen


def test_kcat_with_librdkafkas_unsecured_jwt():
    """Kafka's default validator (no JWKS URL) takes librdkafka's unsigned tokens
    (`enable.sasl.oauthbearer.unsecure.jwt`); the principal comes from `sasl.oauthbearer.config`.
    The same listener still serves SCRAM for the other clients."""
    b = start_broker({"sasl.enabled.mechanisms": "OAUTHBEARER,SCRAM-SHA-512",
                      "connection.failed.authentication.delay.ms": 50},
                     prefix="shoal-oauth-unsecured-", listeners={"sasl": "SASL_PLAINTEXT"})
    try:
        def kcat(principal, *args, input=None):
            return run_kcat(b.sasl_bootstrap, "SASL_PLAINTEXT", "-X", "sasl.mechanisms=OAUTHBEARER",
                            "-X", "enable.sasl.oauthbearer.unsecure.jwt=true", "-X",
                            f"sasl.oauthbearer.config=principal={principal} lifeSeconds=600",
                            *args, input=input)
        rc, out, err = kcat("kcat-user", "-P", "-t", "oauth-kcat", "-K:", input="k1:v1\nk2:v2\n")
        assert rc == 0, err
        rc, out, err = kcat("kcat-user", "-C", "-t", "oauth-kcat", "-e", "-f", "%k=%s\n")
        assert rc == 0, err
        assert out.split() == ["k1=v1", "k2=v2"], out
        assert "unsecured token validator" in pathlib.Path(b.logs[-1]).read_text()
    finally:
        b.finish()
