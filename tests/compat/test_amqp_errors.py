"""AMQP 0-9-1 errors as RabbitMQ reports them, seen through pika. After each, a fresh
connection must still work (assert_alive), and after a channel error the connection itself
stays open (a channel error closes only the channel).

RabbitMQ 3.10's answers, encoded here (reply texts are "<CONSTANT NAME> - <detail>"):
- passive queue.declare / basic.consume / queue.bind of a missing queue: channel.close 404
  "NOT_FOUND - no queue '<q>' in vhost '/'"; missing exchange (basic.publish, passive
  exchange.declare, queue.bind): 404 "NOT_FOUND - no exchange '<x>' in vhost '/'". A publish
  is asynchronous: the 404 closes the channel after the publish, seen by the next synchronous
  call (or the confirm wait).
- queue redeclared with another durable flag: 406 "PRECONDITION_FAILED - inequivalent arg
  'durable' for queue '<q>' in vhost '/': received 'false' but current is 'true'"; exchange
  redeclared with another type: 406 "... inequivalent arg 'type' for exchange ...".
- basic.ack of an unknown (or already acked) delivery tag: 406 "PRECONDITION_FAILED - unknown
  delivery tag <n>".
- exchange.declare with an unknown type: RabbitMQ closes the whole CONNECTION (not just the
  channel) with 503 "COMMAND_INVALID - unknown exchange type '<t>'". (Surprising: the spec
  lists command-invalid as a connection error, and RabbitMQ follows it.)
- an exclusive queue used from another connection: channel.close 405 "RESOURCE_LOCKED - cannot
  obtain exclusive access to locked queue '<q>' in vhost '/'. ..."
- names starting with "amq.": 403 "ACCESS_REFUSED - queue name '<q>' contains reserved prefix
  'amq.*'" (exchange: "exchange name ...").
- queue.delete of a missing queue: succeeds (delete-ok), no error (RabbitMQ 3.10).
- mandatory publish with no route: basic.return 312 "NO_ROUTE" (then basic.ack when confirms
  are on); pika's confirm mode raises UnroutableError carrying the returned message. A
  non-mandatory unroutable publish is confirmed (ack) and silently dropped.
- wrong password: connection.close 403 "ACCESS_REFUSED - Login was refused using
  authentication mechanism PLAIN. For details see the broker logfile." after start-ok;
  pika raises ProbableAuthenticationError. Missing vhost: 530 "NOT_ALLOWED - vhost <v> not
  found" on connection.open; pika raises ProbableAccessDeniedError.
- a protocol header that is not AMQP 0-9-1 (another AMQP version, or HTTP): the server writes
  its own header b"AMQP\\x00\\x00\\x09\\x01" and closes the socket (RabbitMQ resets it).
"""
import socket

import pika
import pytest

from amqp_harness import assert_alive, get_one, unique

pytest_plugins = ["amqp_harness"]

ChannelClosed = pika.exceptions.ChannelClosedByBroker
ConnectionClosed = pika.exceptions.ConnectionClosedByBroker


def channel_error(conn, action):
    """Runs action(channel) on a fresh channel of conn; returns the ChannelClosedByBroker it
    raised, after checking that the connection is still open and a new channel works."""
    chan = conn.channel()
    with pytest.raises(ChannelClosed) as e:
        action(chan)
    assert not chan.is_open
    assert conn.is_open, "a channel error must not close the connection"
    other = conn.channel()
    other.queue_declare("", exclusive=True)
    other.close()
    return e.value


def test_passive_declare_of_a_missing_queue_is_404(amqp, conn):
    q = unique("missing")
    e = channel_error(conn, lambda c: c.queue_declare(q, passive=True))
    assert e.reply_code == 404
    assert e.reply_text == f"NOT_FOUND - no queue '{q}' in vhost '/'"
    assert_alive(amqp)


def test_consuming_from_a_missing_queue_is_404(amqp, conn):
    q = unique("missing")
    e = channel_error(conn, lambda c: c.basic_consume(q, lambda *a: None))
    assert e.reply_code == 404
    assert e.reply_text == f"NOT_FOUND - no queue '{q}' in vhost '/'"
    assert_alive(amqp)


def test_redeclaring_a_queue_with_another_durable_flag_is_406(amqp, conn):
    q = unique("durable")
    setup = conn.channel()
    setup.queue_declare(q, durable=True)
    e = channel_error(conn, lambda c: c.queue_declare(q, durable=False))
    assert e.reply_code == 406
    assert e.reply_text.startswith(f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}'"), \
        e.reply_text
    # The queue is unchanged: redeclaring it as it is still works.
    assert setup.queue_declare(q, durable=True).method.queue == q
    setup.queue_delete(q)
    assert_alive(amqp)


def test_redeclaring_an_exchange_with_another_type_is_406(amqp, conn):
    ex = unique("typed")
    setup = conn.channel()
    setup.exchange_declare(ex, "direct")
    e = channel_error(conn, lambda c: c.exchange_declare(ex, "fanout"))
    assert e.reply_code == 406
    assert e.reply_text.startswith(f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{ex}'"), \
        e.reply_text
    setup.exchange_delete(ex)
    assert_alive(amqp)


def test_acking_an_unknown_delivery_tag_is_406(amqp, conn):
    def ack_unknown(c):
        c.basic_ack(12345)                   # asynchronous: the error shows on the next call
        c.queue_declare("", exclusive=True)

    e = channel_error(conn, ack_unknown)
    assert (e.reply_code, e.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 12345")
    assert_alive(amqp)


def test_acking_twice_is_406(amqp, conn):
    def ack_twice(c):
        q = c.queue_declare("", exclusive=True).method.queue
        c.basic_publish("", q, b"once")
        m, _, _ = get_one(c, q)
        assert m.delivery_tag == 1
        c.basic_ack(m.delivery_tag)
        c.basic_ack(m.delivery_tag)
        c.queue_declare("", exclusive=True)

    e = channel_error(conn, ack_twice)
    assert (e.reply_code, e.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 1")
    assert_alive(amqp)


def test_publishing_to_a_missing_exchange_is_404(amqp, conn):
    ex = unique("nowhere")

    def publish(c):
        c.basic_publish(ex, "rk", b"lost")
        c.queue_declare("", exclusive=True)

    e = channel_error(conn, publish)
    assert (e.reply_code, e.reply_text) == (404, f"NOT_FOUND - no exchange '{ex}' in vhost '/'")

    def publish_confirmed(c):
        c.confirm_delivery()
        c.basic_publish(ex, "rk", b"lost")

    e = channel_error(conn, publish_confirmed)
    assert (e.reply_code, e.reply_text) == (404, f"NOT_FOUND - no exchange '{ex}' in vhost '/'")
    assert_alive(amqp)


def test_missing_exchange_or_queue_in_bind_and_passive_exchange_declare_are_404(amqp, conn):
    ex, q = unique("nox"), unique("noq")
    e = channel_error(conn, lambda c: c.exchange_declare(ex, passive=True))
    assert (e.reply_code, e.reply_text) == (404, f"NOT_FOUND - no exchange '{ex}' in vhost '/'")
    mine = conn.channel()
    real_q = mine.queue_declare("", exclusive=True).method.queue
    e = channel_error(conn, lambda c: c.queue_bind(real_q, ex, "rk"))
    assert (e.reply_code, e.reply_text) == (404, f"NOT_FOUND - no exchange '{ex}' in vhost '/'")
    real_ex = unique("realx")
    mine.exchange_declare(real_ex, "direct")
    e = channel_error(conn, lambda c: c.queue_bind(q, real_ex, "rk"))
    assert (e.reply_code, e.reply_text) == (404, f"NOT_FOUND - no queue '{q}' in vhost '/'")
    mine.exchange_delete(real_ex)
    assert_alive(amqp)


def test_deleting_a_missing_queue_is_not_an_error(amqp, ch):
    ok = ch.queue_delete(unique("never-declared"))
    assert ok.method.message_count == 0
    assert ch.is_open


def test_reserved_amq_prefix_is_403(amqp, conn):
    q, ex = "amq." + unique("q"), "amq." + unique("x")
    e = channel_error(conn, lambda c: c.queue_declare(q))
    assert (e.reply_code, e.reply_text) == (403, f"ACCESS_REFUSED - queue name '{q}' contains reserved prefix 'amq.*'")
    e = channel_error(conn, lambda c: c.exchange_declare(ex, "direct"))
    assert (e.reply_code, e.reply_text) == (403, f"ACCESS_REFUSED - exchange name '{ex}' contains reserved prefix 'amq.*'")
    assert_alive(amqp)


def test_exclusive_queue_from_another_connection_is_405(amqp, conn):
    owner = conn.channel()
    q = owner.queue_declare("", exclusive=True).method.queue
    other = amqp.connect()
    try:
        for action in (lambda c: c.queue_declare(q, passive=True),
                       lambda c: c.basic_consume(q, lambda *a: None)):
            e = channel_error(other, action)
            assert e.reply_code == 405
            assert e.reply_text.startswith(
                f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'"), e.reply_text
    finally:
        other.close()
    # The owner still uses it.
    owner.basic_publish("", q, b"mine")
    assert get_one(owner, q, auto_ack=True)[2] == b"mine"
    assert_alive(amqp)


def test_unknown_exchange_type_closes_the_connection_with_503(amqp):
    c = amqp.connect()
    try:
        chan = c.channel()
        with pytest.raises(ConnectionClosed) as e:
            chan.exchange_declare(unique("odd"), exchange_type="no-such-type")
        assert (e.value.reply_code, e.value.reply_text) == (
            503, "COMMAND_INVALID - unknown exchange type 'no-such-type'")
        assert not c.is_open
    finally:
        if c.is_open:
            c.close()
    assert_alive(amqp)


def test_mandatory_publish_without_route_is_returned(amqp, ch):
    ch.confirm_delivery()
    q = unique("nobody")
    with pytest.raises(pika.exceptions.UnroutableError) as e:
        ch.basic_publish("", q, b"returned", pika.BasicProperties(message_id="r-1"), mandatory=True)
    [returned] = e.value.messages
    assert (returned.method.reply_code, returned.method.reply_text) == (312, "NO_ROUTE")
    assert (returned.method.exchange, returned.method.routing_key) == ("", q)
    assert returned.body == b"returned" and returned.properties.message_id == "r-1"
    # Through an exchange with no matching binding too.
    ex = unique("unbound")
    ch.exchange_declare(ex, "direct")
    with pytest.raises(pika.exceptions.UnroutableError) as e:
        ch.basic_publish(ex, "nope", b"returned too", mandatory=True)
    assert e.value.messages[0].method.reply_code == 312
    # Not mandatory: confirmed and dropped; mandatory with a route: delivered.
    ch.basic_publish("", q, b"dropped")
    target = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", target, b"routed", mandatory=True)
    assert get_one(ch, target, auto_ack=True)[2] == b"routed"
    assert ch.is_open
    ch.exchange_delete(ex)
    assert_alive(amqp)


def test_wrong_password_is_refused(amqp):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        amqp.connect(credentials=pika.PlainCredentials("guest", "not-the-password"))
    assert "403" in str(e.value) and "ACCESS_REFUSED" in str(e.value), str(e.value)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        amqp.connect(credentials=pika.PlainCredentials("no-such-user", "guest"))
    assert_alive(amqp)


def test_missing_vhost_is_refused(amqp):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        amqp.connect(virtual_host=unique("vhost"))
    assert "530" in str(e.value) and "NOT_ALLOWED" in str(e.value), str(e.value)
    assert_alive(amqp)


@pytest.mark.parametrize("header", [b"AMQP\x01\x01\x00\x0a", b"AMQP\x00\x00\x08\x00",
                                    b"HTTP/1.1", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
                         ids=["amqp-0-10", "amqp-0-8", "http-8-bytes", "http-request"])
def test_bad_protocol_header_gets_the_server_header_and_close(amqp, header):
    s = socket.create_connection((amqp.host, amqp.port), timeout=10)
    try:
        s.sendall(header)
        data = b""
        while True:
            try:
                chunk = s.recv(64)
            except ConnectionResetError:          # RabbitMQ resets after writing its header
                break
            if not chunk:
                break
            data += chunk
            assert len(data) <= 64, data
    finally:
        s.close()
    assert data == b"AMQP\x00\x00\x09\x01"
    assert_alive(amqp)
