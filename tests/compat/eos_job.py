"""An exactly-once read-process-write job, as Kafka Streams and Flink's Kafka sink run one:
consume from the input topic in a consumer group (read_committed, no auto-commit), and for
each batch, in one transaction: produce the processed records to the output topic and commit
the consumed offsets (`send_offsets_to_transaction`). test_transactions.py starts it, SIGKILLs
it (and the broker) at random points, and checks the output holds every input exactly once.

Usage: eos_job.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID EXPECTED PAUSE_S
Runs until the group's committed offsets cover EXPECTED input records, then exits 0. Each
transaction stays open PAUSE_S seconds after its records are produced (the "processing"), so a
kill usually lands inside one. Prints "ready" once init_transactions returned, "committed N"
after each transaction (N records).
"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

BATCH = 10           # records per transaction: many transactions per round


def main():
    bootstrap, inp, out, group, txn_id, expected, pause_s = sys.argv[1:8]
    expected, pause_s = int(expected), float(pause_s)
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group,
        # Static membership: a restarted job takes its predecessor's place at once instead of
        # waiting for the dead member's session to time out.
        "group.instance.id": f"{group}-job", "session.timeout.ms": 6000,
        "isolation.level": "read_committed", "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    producer = Producer({
        "bootstrap.servers": bootstrap, "transactional.id": txn_id,
        "transaction.timeout.ms": 10000, "linger.ms": 0,
    })
    producer.init_transactions(30)
    print("ready", flush=True)
    consumer.subscribe([inp])
    done = 0
    while True:
        msgs = [m for m in consumer.consume(BATCH, timeout=0.5) if m.error() is None]
        if not msgs:
            assignment = consumer.assignment()
            # The input has no transactions: its offsets count its records.
            if assignment and sum(max(tp.offset, 0) for tp in
                                  consumer.committed(assignment, timeout=10)) >= expected:
                break
            continue
        producer.begin_transaction()
        for m in msgs:
            value = f"{m.partition()}:{m.offset()}:{m.value().decode()}"
            producer.produce(out, key=m.key(), value=value.encode())
        producer.flush(30)
        time.sleep(pause_s)
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        try:
            producer.commit_transaction(30)
        except KafkaException as e:
            if e.args[0].txn_requires_abort():
                producer.abort_transaction(30)
                # Rewind to the committed offsets: the aborted batch is processed again.
                for tp in consumer.committed(consumer.assignment(), timeout=10):
                    consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))
                continue
            raise
        done += len(msgs)
        print("committed", len(msgs), flush=True)
    consumer.close()
    print("finished", done, flush=True)


if __name__ == "__main__":
    main()
