//! The NDP prober of the scale measurement. It runs inside the client namespace as a re-execution
//! of the test binary (the test process itself stays in the host's namespace): one AF_PACKET
//! socket sends a multicast neighbor solicitation for every probed IP in turn, paced evenly over
//! a cycle (`rate` solicitations per second, so a cycle lasts `ips / rate`, which bounds the
//! resolution), and a raw ICMPv6 socket receives every neighbor advertisement. For each
//! (IP, answering MAC, solicited or not) it prints the first one it saw, with its wall-clock
//! receive time, so the test can compare it with the moment it killed a speaker.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrolb::layer2::iface::{self, ExcludePatterns};
use ferrolb::layer2::ndp::{NDP_HOP_LIMIT, NdpMessage, multicast_mac, solicited_node};
use ferrolb::layer2::socket::PacketSocket;
use ferrolb::layer2::{Mac, NdpRepr};
use socket2::{Domain, Protocol, Socket, Type};

/// Set (to the job file) when the test binary is re-executed as the prober.
pub const CHILD_ENV: &str = "FERROLB_SCALE_PROBER";
/// The test function that runs [`child_main`] when [`CHILD_ENV`] is set.
pub const CHILD_TEST: &str = "scale_prober_child";
/// The client namespace's address (tests/netns/mod.rs), the solicitations' source.
const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const TYPE_NEIGHBOR_ADVERT: u8 = 136;
const OPTION_TARGET_LL: u8 = 2;

pub fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// One first sighting: `mac` advertised `ip` at `at_ns` (unix ns), in answer to a probe
/// (`solicited`) or on its own (a takeover announcement).
#[derive(Debug, Clone)]
pub struct Answer {
    pub at_ns: u128,
    pub solicited: bool,
    pub ip: Ipv6Addr,
    pub mac: String,
}

/// How long the prober's cycles took (each probed every IP once).
#[derive(Debug, Clone, Copy)]
pub struct Cycles {
    pub count: u64,
    pub mean: Duration,
    pub max: Duration,
    pub send_errors: u64,
}

/// How a prober solicits: `rate` solicitations per second, for `cycles` cycles (0: until
/// [`Prober::finish`]) and never longer than `max_secs`. With `victim` (a MAC), an IP is no
/// longer solicited once another MAC has answered a solicitation for it: the cycle shrinks to
/// the IPs not yet taken over, so the last ones are seen sooner and the survivors answer fewer
/// probes meanwhile.
pub struct Pace<'a> {
    pub rate: u32,
    pub cycles: u64,
    pub max_secs: u64,
    pub victim: Option<&'a str>,
}

/// A running prober, seen from the test process.
pub struct Prober {
    child: Child,
    lines: mpsc::Receiver<String>,
    stop: PathBuf,
    pub answers: Vec<Answer>,
    pub cycles: Option<Cycles>,
}

impl Prober {
    /// Starts probing `ips` from namespace `ns` as `pace` says.
    pub fn start(ns: &str, dir: &Path, name: &str, ips: &[Ipv6Addr], pace: &Pace) -> Prober {
        let job = dir.join(format!("{name}.job"));
        let stop = dir.join(format!("{name}.stop"));
        let _ = std::fs::remove_file(&stop);
        let Pace {
            rate,
            cycles,
            max_secs,
            victim,
        } = pace;
        let victim = victim.unwrap_or("-");
        let mut text = format!("{rate} {cycles} {max_secs} {victim} {}\n", stop.display());
        for ip in ips {
            text.push_str(&format!("{ip}\n"));
        }
        std::fs::write(&job, text).expect("write prober job");
        let me = std::env::current_exe().expect("test binary path");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(me)
            .args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
            .args(["--test-threads=1", "-q"])
            .env(CHILD_ENV, &job)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the prober");
        let stdout = child.stdout.take().expect("prober stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Prober {
            child,
            lines,
            stop,
            answers: Vec::new(),
            cycles: None,
        }
    }

    /// Takes in what the prober printed so far.
    pub fn poll(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.take(&line);
        }
    }

    fn take(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["A", at, kind, ip, mac] => {
                if let (Ok(at_ns), Ok(ip)) = (at.parse(), ip.parse()) {
                    self.answers.push(Answer {
                        at_ns,
                        solicited: *kind == "probe",
                        ip,
                        mac: mac.to_string(),
                    });
                }
            }
            ["C", count, mean_us, max_us, errors] => {
                let us = |s: &str| Duration::from_micros(s.parse().unwrap_or(0));
                self.cycles = Some(Cycles {
                    count: count.parse().unwrap_or(0),
                    mean: us(mean_us),
                    max: us(max_us),
                    send_errors: errors.parse().unwrap_or(0),
                });
            }
            _ => {}
        }
    }

    /// Polls every 50 ms until `done` holds for the answers so far; false after `timeout`.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[Answer]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            if done(&self.answers) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the prober and takes in its last lines.
    pub fn finish(self) -> Prober {
        std::fs::write(&self.stop, "").expect("stop file");
        self.wait_done()
    }

    /// Waits for a prober started with a number of cycles to end, and takes in its last lines.
    pub fn wait_done(mut self) -> Prober {
        let _ = self.child.wait();
        // The reader thread ends with the child's stdout; drain what it forwarded.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.take(&line);
        }
        self
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Job {
    rate: u32,
    cycles: u64,
    max: Duration,
    /// Stop soliciting an IP once a MAC other than this one answered for it.
    victim: Option<String>,
    stop: PathBuf,
    ips: Vec<Ipv6Addr>,
}

fn read_job(path: &Path) -> Job {
    let text = std::fs::read_to_string(path).expect("prober job file");
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().expect("job header").splitn(5, ' ').collect();
    Job {
        rate: head[0].parse().expect("rate"),
        cycles: head[1].parse().expect("cycles"),
        max: Duration::from_secs(head[2].parse().expect("max seconds")),
        victim: (head[3] != "-").then(|| head[3].to_owned()),
        stop: PathBuf::from(head[4]),
        ips: lines.map(|l| l.parse().expect("IPv6 address")).collect(),
    }
}

/// The prober itself, inside the client namespace.
pub fn child_main(job: &Path) {
    let job = read_job(job);
    let eth0 = iface::discover(&ExcludePatterns::default())
        .expect("interfaces")
        .into_iter()
        .find(|i| i.name == "eth0")
        .expect("eth0 in the client namespace");
    let receiver = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .expect("raw ICMPv6 socket (root)");
    // A takeover can bring thousands of advertisements at once.
    let _ = receiver.set_recv_buffer_size(8 << 20);
    receiver
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let retired: Retired = Arc::default();
    let reading = {
        let stop = stop.clone();
        let retired = retired.clone();
        let victim = job.victim.clone();
        std::thread::spawn(move || receive(&receiver, &stop, victim.as_deref(), &retired))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cycles = runtime.block_on(send(&job, eth0.index, eth0.mac, &retired));
    // Answers to the last solicitations are on their way.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let _ = reading.join();
    let count = cycles.0.len() as u64;
    let total: Duration = cycles.0.iter().sum();
    let mean = total.checked_div(count.max(1) as u32).unwrap_or_default();
    let max = cycles.0.iter().max().copied().unwrap_or_default();
    println!(
        "C {count} {} {} {}",
        mean.as_micros(),
        max.as_micros(),
        cycles.1
    );
}

/// IPs another node than the victim answered for: no longer solicited.
type Retired = Arc<Mutex<HashSet<Ipv6Addr>>>;

/// Sends the cycles; returns each cycle's duration and the number of failed sends.
async fn send(job: &Job, ifindex: u32, mac: Mac, retired: &Retired) -> (Vec<Duration>, u64) {
    let socket = PacketSocket::open(ifindex).expect("packet socket on eth0");
    let frames: Vec<(Ipv6Addr, Vec<u8>)> = job
        .ips
        .iter()
        .map(|&target| {
            let group = solicited_node(target);
            let frame = NdpRepr {
                eth_dst: multicast_mac(group),
                eth_src: mac,
                src_ip: CLIENT_IP6,
                dst_ip: group,
                hop_limit: NDP_HOP_LIMIT,
                message: NdpMessage::NeighborSolicit {
                    target,
                    source_ll: Some(mac),
                },
            }
            .to_vec();
            (target, frame)
        })
        .collect();
    let gap = Duration::from_secs_f64(1.0 / f64::from(job.rate.max(1)));
    let deadline = Instant::now() + job.max;
    let mut cycles = Vec::new();
    let mut errors = 0;
    while Instant::now() < deadline
        && !job.stop.exists()
        && (job.cycles == 0 || (cycles.len() as u64) < job.cycles)
    {
        let start = Instant::now();
        let due: Vec<&Vec<u8>> = {
            let retired = retired.lock().expect("retired set");
            frames
                .iter()
                .filter(|(ip, _)| !retired.contains(ip))
                .map(|(_, f)| f)
                .collect()
        };
        if due.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        for (i, frame) in due.iter().enumerate() {
            let at = start + gap * i as u32;
            if at > Instant::now() {
                tokio::time::sleep_until(at.into()).await;
            }
            if socket.send(frame).await.is_err() {
                errors += 1;
            }
        }
        let end = start + gap * due.len() as u32;
        if end > Instant::now() {
            tokio::time::sleep_until(end.into()).await;
        }
        cycles.push(start.elapsed());
    }
    (cycles, errors)
}

/// Prints the first advertisement of each (IP, MAC, solicited) until `stop`; retires an IP
/// when a MAC other than `victim` answers a solicitation for it.
fn receive(socket: &Socket, stop: &AtomicBool, victim: Option<&str>, retired: &Retired) {
    let mut seen: HashSet<(Ipv6Addr, [u8; 6], bool)> = HashSet::new();
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        // An IPv6 raw socket delivers the ICMPv6 message without the IP header.
        let Ok(n) = (&*socket).read(&mut buf) else {
            continue;
        };
        let at = unix_ns();
        let Some((ip, mac, solicited)) = parse_advert(&buf[..n]) else {
            continue;
        };
        if seen.insert((ip, mac, solicited)) {
            let kind = if solicited { "probe" } else { "announce" };
            let mac = Mac(mac).to_string();
            println!("A {at} {kind} {ip} {mac}");
            if solicited && victim.is_some_and(|v| v != mac) {
                retired.lock().expect("retired set").insert(ip);
            }
        }
    }
}

/// (target, target link-layer address, solicited flag) of a neighbor advertisement.
fn parse_advert(message: &[u8]) -> Option<(Ipv6Addr, [u8; 6], bool)> {
    if message.len() < 32 || message[0] != TYPE_NEIGHBOR_ADVERT {
        return None;
    }
    let target: [u8; 16] = message[8..24].try_into().ok()?;
    if message[24] != OPTION_TARGET_LL || message[25] != 1 {
        return None;
    }
    let mac: [u8; 6] = message[26..32].try_into().ok()?;
    Some((Ipv6Addr::from(target), mac, message[4] & 0x40 != 0))
}
