//! Transactions with third-party clients against a real `kmirror-broker` process:
//! confluent-kafka (librdkafka) commits, aborts, is fenced, runs a consume-transform-produce
//! loop and keeps a transaction across a broker restart; kafka-python commits, aborts and
//! sends group offsets with a transaction, and lists and describes transactions and
//! producers with its admin client. The scripts live in `tests/interop/`; the
//! clients are installed by `scripts/test.sh` (`KMIRROR_PYTHON`).

use std::time::Duration;

use kmirror_testkit::{python_command, run_script_ok, BrokerProcess};

const INTEROP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
/// How long to wait for a client run (generous: CI machines are slow and shared).
const WAIT: Duration = Duration::from_secs(60);

fn script(name: &str) -> String {
    format!("{INTEROP_DIR}/{name}")
}

/// A transaction open while the broker restarts goes on after it and commits: the
/// coordinator's state is kept in the data directory, as Kafka keeps it in
/// `__transaction_state` (the script decides and says why).
#[test]
fn a_transaction_spans_a_broker_restart() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let mut child = python_command()
        .arg(script("transaction_across_restart.py"))
        .args(["--bootstrap", &broker.addr()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the script starts");
    // A script that hangs is killed, so the test fails instead of waiting forever.
    let pid = child.id().to_string();
    let (done, stop) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if stop.recv_timeout(WAIT * 3).is_err() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().and_then(Result::ok);
    assert_eq!(ready.as_deref(), Some("READY"), "{}", broker.log.tail(30));
    broker.terminate_ok();
    broker.restart();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    assert!(status.success(), "{rest:?}\n{}", broker.log.tail(30));
}

/// kafka-python's transactional producer (its own implementation of the protocol): a
/// commit and an abort as its read_committed and read_uncommitted consumers see them, and
/// group offsets sent with a transaction.
#[test]
fn kafka_python_transactions_commit_abort_and_send_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut cmd = python_command();
    cmd.arg(script("kafka_python_transactions.py"))
        .args(["--bootstrap", &broker.addr()]);
    let out = run_script_ok(&mut cmd, WAIT);
    assert!(out.contains("\"group_offset\": 7"), "{out}");
}

/// kafka-python's transaction tooling (KIP-664, what `kafka-transactions.sh` runs):
/// ListTransactions with its state, producer id and duration filters, DescribeTransactions
/// and DescribeProducers around a transaction left open and then committed.
#[test]
fn kafka_python_lists_and_describes_transactions_and_producers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut cmd = python_command();
    cmd.arg(script("kafka_python_transaction_tools.py"))
        .args(["--bootstrap", &broker.addr()]);
    let out = run_script_ok(&mut cmd, WAIT);
    assert!(out.contains("\"ok\": true"), "{out}");
}

/// confluent-kafka's transactional producer: commits and aborts as a read_committed and a
/// read_uncommitted consumer see them, a second producer with the same transactional id
/// fencing the first, and a consume-transform-produce loop whose group offsets commit
/// with its transaction only (the script decides and says why).
#[test]
fn confluent_kafka_transactions_commit_abort_and_fence() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut cmd = python_command();
    cmd.arg(script("transactions.py"))
        .args(["--bootstrap", &broker.addr()]);
    let out = run_script_ok(&mut cmd, WAIT);
    assert!(out.contains("\"committed_ok\": true"), "{out}");
    assert!(out.contains("\"eos_ok\": true"), "{out}");
}
