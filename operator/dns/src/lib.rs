//! pdc's DNS wire client. Everything pdc says to an authoritative server goes through
//! here: RFC 2136 UPDATE messages carrying a plan's prerequisites, zone transfers
//! (AXFR) read to the closing SOA, and plain queries. Updates and transfers are
//! signed with TSIG afresh for every attempt, and the server's TSIG on the answer is
//! checked. All exchanges run over TCP with a deadline.
//!
//! The TSIG secret is held in [`Key`], whose `Debug` never prints it.

// No function longer than 80 lines (clippy.toml sets the threshold): a long body is
// split into named steps.
#![warn(clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::{A, AAAA, CAA, CNAME, MX, NULL, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType as Wire, TSigVerifier, TSigner};
use pdc_core::dnsplan::{Change, RRset, RecordType, Zone, canonical_value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an exchange with the server failed. [`DnsIoError::reason`] is a bounded label
/// for metrics; the message is for people and never holds the key.
#[derive(Debug, thiserror::Error)]
pub enum DnsIoError {
    #[error("cannot reach the DNS server {addr}: {detail}")]
    Unreachable { addr: SocketAddr, detail: String },
    #[error("the DNS server {addr} refused pdc's TSIG key {key:?} ({detail}); the key's name, algorithm and secret must match the server's")]
    Tsig { addr: SocketAddr, key: String, detail: String },
    #[error("the DNS server {addr} refused the update because the zone changed since pdc read it ({rcode}); pdc reads it again")]
    Prerequisite { addr: SocketAddr, rcode: String },
    #[error("the DNS server {addr} answered {rcode} to {what}")]
    Refused { addr: SocketAddr, what: String, rcode: String },
    #[error("the DNS server {addr} sent a reply pdc cannot use ({what}): {detail}")]
    Protocol { addr: SocketAddr, what: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

impl DnsIoError {
    pub fn reason(&self) -> &'static str {
        match self {
            DnsIoError::Unreachable { .. } => "unreachable",
            DnsIoError::Tsig { .. } => "tsig",
            DnsIoError::Prerequisite { .. } => "prerequisite",
            DnsIoError::Refused { .. } => "refused",
            DnsIoError::Protocol { .. } => "protocol",
            DnsIoError::Invalid(_) => "invalid",
        }
    }
}

type Result<T> = std::result::Result<T, DnsIoError>;

/// A TSIG key: its name as the server knows it, algorithm and secret.
#[derive(Clone)]
pub struct Key {
    pub name: String,
    pub algorithm: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("name", &self.name).field("algorithm", &self.algorithm).field("secret", &"<redacted>").finish()
    }
}

impl Key {
    /// A key from its base64 secret (as in a Secret, `tsig-keygen` or knot.conf).
    pub fn from_base64(name: &str, algorithm: &str, secret_b64: &str) -> Result<Key> {
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_b64.trim())
            .map_err(|_| DnsIoError::Invalid(format!("the secret of TSIG key {name:?} is not base64")))?;
        if secret.is_empty() {
            return Err(DnsIoError::Invalid(format!("the secret of TSIG key {name:?} is empty")));
        }
        Ok(Key { name: name.to_string(), algorithm: algorithm.to_string(), secret })
    }

    fn signer(&self) -> Result<TSigner> {
        let alg = match self.algorithm.as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => return Err(DnsIoError::Invalid(format!("TSIG algorithm {other:?} is not hmac-sha256, hmac-sha384 or hmac-sha512"))),
        };
        let name = Name::from_ascii(&self.name).map_err(|_| DnsIoError::Invalid(format!("TSIG key name {:?} is not a DNS name", self.name)))?;
        TSigner::new(self.secret.clone(), alg, name, 300).map_err(|e| DnsIoError::Invalid(format!("TSIG key {:?}: {e}", self.name)))
    }
}

/// Where a zone's primary server listens, and how long one exchange may take.
#[derive(Clone, Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

impl Server {
    pub fn new(addr: SocketAddr) -> Server {
        Server { addr, timeout: Duration::from_secs(10) }
    }
}

/// What a zone transfer found.
#[derive(Clone, Debug, Default)]
pub struct Transfer {
    pub serial: u32,
    /// The record sets of the types pdc manages (A, AAAA, CNAME, TXT, MX, SRV, CAA, PTR, DNAME).
    pub sets: Zone,
    /// Whether the apex SOA carries an RRSIG that has not expired.
    pub signed: bool,
    /// Resource records in the transfer, of any type.
    pub records: usize,
    /// Records of the types pdc does not manage (SOA, NS, DNSSEC, …), counted by
    /// (owner, type): only [`transfer_everything`] fills it.
    pub other: BTreeMap<(String, String), u32>,
    /// Owners of TXT records whose character-strings are split otherwise than pdc
    /// splits a value (at 255 bytes): pdc could not name such a record exactly in a
    /// prerequisite. Only [`transfer_everything`] fills it.
    pub split_txt: std::collections::BTreeSet<String>,
}

/// One answer record, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerRecord {
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub value: String,
}

/// A query's answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub rcode: String,
    pub authoritative: bool,
    pub records: Vec<AnswerRecord>,
    /// RRSIGs in the answer that cover the asked type, with their expiry (UNIX seconds).
    pub rrsigs: Vec<u32>,
}

/// Now in UNIX seconds as DNSSEC's 32-bit times count them.
fn now_u32() -> u32 {
    u32::try_from(now_unix()).unwrap_or(u32::MAX)
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn name(s: &str) -> Result<Name> {
    let n = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::from_ascii(&n).map_err(|_| DnsIoError::Invalid(format!("{s:?} is not a DNS name")))
}

fn wire_type(t: RecordType) -> Wire {
    match t {
        RecordType::A => Wire::A,
        RecordType::AAAA => Wire::AAAA,
        RecordType::CNAME => Wire::CNAME,
        RecordType::TXT => Wire::TXT,
        RecordType::MX => Wire::MX,
        RecordType::SRV => Wire::SRV,
        RecordType::CAA => Wire::CAA,
        RecordType::PTR => Wire::PTR,
        RecordType::DNAME => Wire::DNAME,
    }
}

/// The record data of one canonical value (see [`canonical_value`]).
pub fn rdata(t: RecordType, value: &str) -> Result<RData> {
    let bad = |why: &str| DnsIoError::Invalid(format!("{} value {value:?}: {why}", t.as_str()));
    let v = canonical_value(t, value).map_err(|e| DnsIoError::Invalid(e.to_string()))?;
    let num = |s: Option<&str>| s.and_then(|s| s.parse::<u16>().ok()).ok_or_else(|| bad("not a number"));
    Ok(match t {
        RecordType::A => RData::A(A(v.parse().map_err(|_| bad("not IPv4"))?)),
        RecordType::AAAA => RData::AAAA(AAAA(v.parse().map_err(|_| bad("not IPv6"))?)),
        RecordType::CNAME => RData::CNAME(CNAME(name(&v)?)),
        RecordType::PTR => RData::PTR(PTR(name(&v)?)),
        // The wire library has no DNAME type: its data is the target, uncompressed
        // (RFC 6672 §2.5), sent as opaque record data of type 39.
        RecordType::DNAME => RData::Unknown { code: Wire::DNAME, rdata: NULL::with(uncompressed(&v)) },
        RecordType::TXT => {
            // A character-string holds at most 255 bytes; longer values are split.
            let chunks = v.as_bytes().chunks(255).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
            RData::TXT(TXT::new(chunks))
        }
        RecordType::MX => {
            let mut it = v.split(' ');
            let pref = num(it.next())?;
            RData::MX(MX::new(pref, name(it.next().unwrap_or_default())?))
        }
        RecordType::SRV => {
            let mut it = v.split(' ');
            let (p, w, port) = (num(it.next())?, num(it.next())?, num(it.next())?);
            RData::SRV(SRV::new(p, w, port, name(it.next().unwrap_or_default())?))
        }
        RecordType::CAA => {
            let mut it = v.splitn(3, ' ');
            let flags: u8 = it.next().and_then(|f| f.parse().ok()).ok_or_else(|| bad("flags"))?;
            let tag = it.next().unwrap_or_default();
            let val = it.next().unwrap_or_default().trim_matches('"');
            let mut caa = CAA::new_issue(false, None, Vec::new());
            caa.issuer_critical = flags & 0x80 != 0;
            caa.reserved_flags = flags & 0x7f;
            caa.tag = tag.to_string();
            caa.value = val.as_bytes().to_vec();
            RData::CAA(caa)
        }
    })
}

/// The canonical text of record data of a type pdc manages.
pub fn value_text(data: &RData) -> Option<(RecordType, String)> {
    let (t, raw) = match data {
        RData::A(a) => (RecordType::A, a.0.to_string()),
        RData::AAAA(a) => (RecordType::AAAA, a.0.to_string()),
        RData::CNAME(c) => (RecordType::CNAME, c.0.to_ascii()),
        RData::PTR(p) => (RecordType::PTR, p.0.to_ascii()),
        RData::TXT(t) => (RecordType::TXT, t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<String>()),
        RData::MX(m) => (RecordType::MX, format!("{} {}", m.preference, m.exchange.to_ascii())),
        RData::SRV(s) => (RecordType::SRV, format!("{} {} {} {}", s.priority, s.weight, s.port, s.target.to_ascii())),
        RData::CAA(c) => (RecordType::CAA, format!("{} {} \"{}\"", c.flags(), c.tag, String::from_utf8_lossy(&c.value))),
        RData::Unknown { code: Wire::DNAME, rdata } => (RecordType::DNAME, name_text(&rdata.anything)?),
        _ => return None,
    };
    // What does not parse as pdc would write it is kept as the server shows it, so
    // it compares unequal to anything pdc wants.
    Some((t, canonical_value(t, &raw).unwrap_or(raw)))
}

/// A host name (canonical: lowercase, dot-terminated, labels checked) in wire
/// form, without compression.
fn uncompressed(host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(host.len() + 1);
    for label in host.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).unwrap_or(63));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// The text of an uncompressed wire name (a DNAME's data), or `None` when it is not one.
fn name_text(mut wire: &[u8]) -> Option<String> {
    let mut labels = Vec::new();
    loop {
        let (&len, rest) = wire.split_first()?;
        if len == 0 {
            break;
        }
        let label = rest.get(..usize::from(len)).filter(|_| len < 64)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        wire = rest.get(usize::from(len)..)?;
    }
    Some(format!("{}.", labels.join(".")))
}

fn records_of(set: &RRset, ttl: u32, class: DNSClass) -> Result<Vec<Record>> {
    let owner = name(&set.name)?;
    set.values
        .iter()
        .map(|v| {
            let mut r = Record::from_rdata(owner.clone(), ttl, rdata(set.rtype, v)?);
            r.dns_class = class;
            Ok(r)
        })
        .collect()
}

/// An empty-data record of `class` for a whole set (RFC 2136 §2.4.3 / §2.5.2).
fn whole_set(set: &RRset, class: DNSClass) -> Result<Record> {
    let mut r = Record::update0(name(&set.name)?, 0, wire_type(set.rtype));
    r.dns_class = class;
    Ok(r)
}

/// The UPDATE message for `changes` to `zone`, each change guarded by its
/// prerequisite: a created set must not exist; a replaced or deleted set must still
/// hold exactly the values pdc read (value-dependent, RFC 2136 §2.4.2).
pub fn update_message(zone: &str, changes: &[Change]) -> Result<Message> {
    let mut m = Message::query();
    m.metadata.op_code = OpCode::Update;
    m.metadata.recursion_desired = false;
    let mut q = Query::new();
    q.set_name(name(zone)?).set_query_class(DNSClass::IN).set_query_type(Wire::SOA);
    m.add_zone(q);
    // Names whose records a CNAME replaces in this message. A server may refuse (and
    // Knot silently drops) a CNAME added where other sets were, even when the same
    // message deleted them type by type; deleting every set at the name first (the
    // planner made sure they are all pdc's) lets the CNAME in, in the same update.
    let deleted: std::collections::BTreeSet<&str> =
        changes.iter().filter_map(|c| if let Change::Delete(d) = c { (d.rtype != RecordType::CNAME).then_some(d.name.as_str()) } else { None }).collect();
    // Likewise Knot refuses (REFUSED) a DNAME added while names below it remain, even
    // when the same message deletes their sets type by type (measured with Knot
    // 3.2); deleting every set at each of those names first lets it in. The planner
    // made sure every set below the DNAME is pdc's and deleted in this message.
    let below: Vec<&str> = changes.iter().filter_map(|c| if let Change::Delete(d) = c { Some(d.name.as_str()) } else { None }).collect();
    let delete_all = |n: &str| -> Result<Record> {
        let mut all = Record::update0(name(n)?, 0, Wire::ANY);
        all.dns_class = DNSClass::ANY;
        Ok(all)
    };
    for c in changes {
        match c {
            Change::Create(s) => {
                m.add_pre_requisite(whole_set(s, DNSClass::NONE)?);
                if s.rtype == RecordType::CNAME && deleted.contains(s.name.as_str()) {
                    m.add_update(delete_all(&s.name)?);
                }
                if s.rtype == RecordType::DNAME {
                    let occluded: std::collections::BTreeSet<&str> = below.iter().copied().filter(|n| pdc_core::dnsplan::is_below(n, &s.name)).collect();
                    for n in occluded {
                        m.add_update(delete_all(n)?);
                    }
                }
                m.add_updates(records_of(s, s.ttl, DNSClass::IN)?);
            }
            Change::Replace { expect, new } => {
                m.add_pre_requisites(records_of(expect, 0, DNSClass::IN)?);
                m.add_update(whole_set(expect, DNSClass::ANY)?);
                m.add_updates(records_of(new, new.ttl, DNSClass::IN)?);
            }
            Change::Delete(s) => {
                m.add_pre_requisites(records_of(s, 0, DNSClass::IN)?);
                m.add_update(whole_set(s, DNSClass::ANY)?);
            }
        }
    }
    Ok(m)
}

struct Conn {
    stream: TcpStream,
    server: Server,
}

impl Conn {
    async fn open(server: &Server) -> Result<Conn> {
        let addr = server.addr;
        let unreachable = |detail: String| DnsIoError::Unreachable { addr, detail };
        let stream = tokio::time::timeout(server.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable(format!("no TCP connection within {:?}", server.timeout)))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn { stream, server: server.clone() })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let addr = self.server.addr;
        let len = u16::try_from(bytes.len()).map_err(|_| DnsIoError::Invalid(format!("a DNS message of {} bytes is too long for TCP; lower the zone's batchSize", bytes.len())))?;
        let mut buf = Vec::with_capacity(bytes.len() + 2);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(bytes);
        tokio::time::timeout(self.server.timeout, self.stream.write_all(&buf))
            .await
            .map_err(|_| DnsIoError::Unreachable { addr, detail: "sending timed out".into() })?
            .map_err(|e| DnsIoError::Unreachable { addr, detail: e.to_string() })
    }

    async fn recv(&mut self) -> Result<Vec<u8>> {
        let addr = self.server.addr;
        let io = |e: std::io::Error| DnsIoError::Unreachable { addr, detail: format!("reading the reply: {e}") };
        let read = async {
            let mut len = [0u8; 2];
            self.stream.read_exact(&mut len).await.map_err(io)?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            self.stream.read_exact(&mut buf).await.map_err(io)?;
            Ok(buf)
        };
        tokio::time::timeout(self.server.timeout, read)
            .await
            .map_err(|_| DnsIoError::Unreachable { addr, detail: format!("no reply within {:?}", self.server.timeout) })?
    }
}

fn decode(addr: SocketAddr, what: &str, bytes: &[u8]) -> Result<Message> {
    Message::from_vec(bytes).map_err(|e| DnsIoError::Protocol { addr, what: what.to_string(), detail: e.to_string() })
}

/// A reply to a signed request: refused keys become [`DnsIoError::Tsig`], and the
/// reply's own TSIG must verify.
fn check_signed(addr: SocketAddr, key: &Key, what: &str, bytes: &[u8], verifier: &mut Option<TSigVerifier>) -> Result<Message> {
    let msg = decode(addr, what, bytes)?;
    let tsig_error = msg.signature.as_ref().and_then(|s| s.data.error.as_ref()).map(|e| format!("{e:?}"));
    if msg.metadata.response_code == ResponseCode::NotAuth || tsig_error.is_some() {
        return Err(DnsIoError::Tsig {
            addr,
            key: key.name.clone(),
            detail: format!("{}{}", msg.metadata.response_code, tsig_error.map(|e| format!(", TSIG error {e}")).unwrap_or_default()),
        });
    }
    if let Some(v) = verifier.as_mut() {
        v.verify(bytes).map_err(|e| DnsIoError::Tsig { addr, key: key.name.clone(), detail: format!("the reply's TSIG does not verify: {e}") })?;
    }
    Ok(msg)
}

fn signed_bytes(key: &Key, mut msg: Message) -> Result<(Vec<u8>, Option<TSigVerifier>)> {
    let signer = key.signer()?;
    let verifier = msg.finalize(&signer, now_unix()).map_err(|e| DnsIoError::Invalid(format!("signing with TSIG key {:?}: {e}", key.name)))?;
    let bytes = msg.to_vec().map_err(|e| DnsIoError::Invalid(format!("encoding the message: {e}")))?;
    Ok((bytes, verifier))
}

/// Send one UPDATE with `changes` to `zone`; `Ok` when the server applied all of it.
pub async fn update(server: &Server, zone: &str, key: &Key, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let (bytes, mut verifier) = signed_bytes(key, update_message(zone, changes)?)?;
    let mut conn = Conn::open(server).await?;
    conn.send(&bytes).await?;
    let reply = conn.recv().await?;
    let msg = check_signed(server.addr, key, "update", &reply, &mut verifier)?;
    let addr = server.addr;
    match msg.metadata.response_code {
        ResponseCode::NoError => Ok(()),
        rc @ (ResponseCode::YXRRSet | ResponseCode::NXRRSet | ResponseCode::YXDomain | ResponseCode::NXDomain) => {
            Err(DnsIoError::Prerequisite { addr, rcode: rc.to_string() })
        }
        rc => Err(DnsIoError::Refused { addr, what: format!("an update of {zone}"), rcode: rc.to_string() }),
    }
}

/// A record's place in the pdc-managed sets: added to or taken from `sets`.
fn apply_record(out: &mut Transfer, r: &Record, add: bool) {
    if r.dns_class != DNSClass::IN {
        return;
    }
    let Some((t, v)) = value_text(&r.data) else { return };
    let owner = r.name.to_ascii().to_ascii_lowercase();
    let key = (owner.clone(), t);
    if add {
        let set = out.sets.entry(key).or_insert_with(|| RRset { name: owner, rtype: t, ttl: r.ttl, values: Default::default() });
        set.ttl = r.ttl;
        set.values.insert(v);
    } else if let Some(set) = out.sets.get_mut(&key) {
        set.values.remove(&v);
        if set.values.is_empty() {
            out.sets.remove(&key);
        }
    }
}

/// An unexpired RRSIG over the apex SOA, if `r` is one: `Some(valid)`.
fn soa_signature(r: &Record, zone: &Name, now: u32) -> Option<bool> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) if r.name == *zone && sig.input().type_covered == Wire::SOA => Some(sig.input().sig_expiration.get() > now),
        _ => None,
    }
}

/// The serial of `r` if it is the zone's SOA.
fn soa_serial(r: &Record, zone: &Name) -> Option<u32> {
    match &r.data {
        RData::SOA(soa) if r.name == *zone => Some(soa.serial),
        _ => None,
    }
}

/// Where a transfer's reading stands between two records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    /// Nothing read yet: the first record is the SOA of the version sent.
    Start,
    /// IXFR: after the first SOA; a second SOA starts the differences, anything else
    /// means the server sends the whole zone (RFC 1995 §4).
    AfterFirst,
    /// The whole zone follows, to the SOA that closes it.
    Full,
    /// IXFR: records the difference to the version `from` removes.
    Deleting { from: u32 },
    /// IXFR: records the difference to version `to` adds.
    Adding { to: u32 },
    Done,
}

/// Reads one transfer, record by record, into the zone it yields: an AXFR into an
/// empty [`Transfer`], an IXFR (RFC 1995) on top of the transfer it was asked from.
/// A transfer that is cut short is an error, never a smaller zone.
struct TransferReader {
    zone: Name,
    out: Transfer,
    /// The serial the server sends, from its first record.
    newest: u32,
    state: Reading,
    incremental: bool,
    now: u32,
    /// Count the records of other types in [`Transfer::other`].
    keep_other: bool,
}

impl TransferReader {
    fn axfr(zone: Name, now: u32) -> Self {
        TransferReader { zone, out: Transfer::default(), newest: 0, state: Reading::Start, incremental: false, now, keep_other: false }
    }

    fn ixfr(zone: Name, base: Transfer, now: u32) -> Self {
        TransferReader { zone, out: base, newest: 0, state: Reading::Start, incremental: true, now, keep_other: false }
    }

    /// Take the next record; `Err` names what is wrong with the stream.
    fn push(&mut self, r: &Record) -> std::result::Result<(), String> {
        let serial = soa_serial(r, &self.zone);
        self.state = match (self.state, serial) {
            (Reading::Done, _) => return Err("records after the closing SOA".into()),
            (Reading::Start, None) => return Err("the transfer does not start with the SOA".into()),
            (Reading::Start, Some(s)) => {
                self.newest = s;
                if self.incremental && (s.wrapping_sub(self.out.serial) as i32) < 0 {
                    return Err(format!("the server's serial {s} is older than {} that was asked from", self.out.serial));
                }
                if self.incremental && s == self.out.serial {
                    // Already up to date: the answer is this one SOA.
                    Reading::Done
                } else if self.incremental {
                    Reading::AfterFirst
                } else {
                    self.out.serial = s;
                    self.out.records = 1;
                    Reading::Full
                }
            }
            (Reading::AfterFirst, Some(s)) => {
                if s != self.out.serial {
                    return Err(format!("the differences start at serial {s}, not at {} that was asked from", self.out.serial));
                }
                Reading::Deleting { from: s }
            }
            (Reading::AfterFirst, None) => {
                // The server sends the whole zone instead of differences.
                self.out = Transfer { serial: self.newest, records: 1, ..Transfer::default() };
                self.full_record(r);
                Reading::Full
            }
            (Reading::Full, Some(s)) if s == self.newest => {
                self.out.records += 1;
                Reading::Done
            }
            (Reading::Full, Some(_)) => return Err("the zone changed during the transfer".into()),
            (Reading::Full, None) => {
                self.full_record(r);
                Reading::Full
            }
            (Reading::Deleting { .. }, Some(to)) => Reading::Adding { to },
            (Reading::Deleting { from }, None) => {
                self.diff_record(r, false);
                Reading::Deleting { from }
            }
            (Reading::Adding { to }, Some(s)) if s == to && to == self.newest => {
                self.out.serial = to;
                Reading::Done
            }
            (Reading::Adding { to }, Some(s)) if s == to => Reading::Deleting { from: s },
            (Reading::Adding { to }, Some(s)) => return Err(format!("a difference from serial {s} follows the one to {to}")),
            (Reading::Adding { to }, None) => {
                self.diff_record(r, true);
                Reading::Adding { to }
            }
        };
        Ok(())
    }

    fn full_record(&mut self, r: &Record) {
        self.out.records += 1;
        if self.keep_other && value_text(&r.data).is_none() {
            let key = (r.name.to_ascii().to_ascii_lowercase(), r.record_type().to_string());
            *self.out.other.entry(key).or_default() += 1;
        }
        if let (true, RData::TXT(t)) = (self.keep_other, &r.data) {
            // pdc writes a value as 255-byte strings with the rest last.
            let (last, rest) = t.txt_data.split_last().map_or((0, &[][..]), |(l, r)| (l.len(), r));
            if last == 0 || rest.iter().any(|s| s.len() != 255) {
                self.out.split_txt.insert(r.name.to_ascii().to_ascii_lowercase());
            }
        }
        if let Some(valid) = soa_signature(r, &self.zone, self.now) {
            self.out.signed |= valid;
        } else {
            apply_record(&mut self.out, r, true);
        }
    }

    fn diff_record(&mut self, r: &Record, add: bool) {
        self.out.records = if add { self.out.records.saturating_add(1) } else { self.out.records.saturating_sub(1) };
        match soa_signature(r, &self.zone, self.now) {
            Some(valid) if add => self.out.signed = valid,
            Some(_) => self.out.signed = false,
            None => apply_record(&mut self.out, r, add),
        }
    }

    fn done(&self) -> bool {
        self.state == Reading::Done
    }
}

/// Send a signed transfer request and read the answer into `reader` to its end.
async fn read_transfer(server: &Server, zone: &str, key: &Key, q: Message, mut reader: TransferReader) -> Result<Transfer> {
    let addr = server.addr;
    let what = format!("a transfer of {zone}");
    let (bytes, mut verifier) = signed_bytes(key, q)?;
    let mut conn = Conn::open(server).await?;
    conn.send(&bytes).await?;
    while !reader.done() {
        let reply = conn.recv().await?;
        let msg = check_signed(addr, key, "zone transfer", &reply, &mut verifier)?;
        if msg.metadata.response_code != ResponseCode::NoError {
            return Err(DnsIoError::Refused { addr, what, rcode: msg.metadata.response_code.to_string() });
        }
        if msg.answers.is_empty() {
            return Err(DnsIoError::Protocol { addr, what, detail: "an empty message before the closing SOA".into() });
        }
        for r in &msg.answers {
            reader.push(r).map_err(|detail| DnsIoError::Protocol { addr, what: what.clone(), detail })?;
        }
    }
    Ok(reader.out)
}

/// A zone transfer request (AXFR or IXFR) for `zone`.
fn transfer_request(zone: &Name, kind: Wire) -> Message {
    let mut q = Message::query();
    q.metadata.recursion_desired = false;
    q.add_query(Query::query(zone.clone(), kind));
    q
}

/// Transfer `zone` (AXFR) to its closing SOA. A transfer that breaks off or does not
/// close is an error, never a smaller zone.
pub async fn transfer(server: &Server, zone: &str, key: &Key) -> Result<Transfer> {
    let zone_name = name(zone)?;
    let q = transfer_request(&zone_name, Wire::AXFR);
    read_transfer(server, zone, key, q, TransferReader::axfr(zone_name, now_u32())).await
}

/// Transfer `zone` (AXFR) as [`transfer`] does, counting the records of the types
/// pdc does not manage too (in [`Transfer::other`]), for taking over a zone.
pub async fn transfer_everything(server: &Server, zone: &str, key: &Key) -> Result<Transfer> {
    let zone_name = name(zone)?;
    let q = transfer_request(&zone_name, Wire::AXFR);
    let mut reader = TransferReader::axfr(zone_name, now_u32());
    reader.keep_other = true;
    read_transfer(server, zone, key, q, reader).await
}

/// Bring `from` up to the zone's current version with an incremental transfer (IXFR,
/// RFC 1995): the server sends only the differences since `from.serial`, or the whole
/// zone when it no longer holds them. Either way the result is the whole zone.
pub async fn incremental(server: &Server, zone: &str, key: &Key, from: Transfer) -> Result<Transfer> {
    let zone_name = name(zone)?;
    let mut q = transfer_request(&zone_name, Wire::IXFR);
    // The version the client holds travels as an SOA in the authority section.
    let root = Name::root();
    q.add_authority(Record::from_rdata(zone_name.clone(), 0, RData::SOA(SOA::new(root.clone(), root, from.serial, 0, 0, 0, 0))));
    read_transfer(server, zone, key, q, TransferReader::ixfr(zone_name, from, now_u32())).await
}

/// Ask `server` for `qname` `qtype` (e.g. `A`, `SOA`), with the DNSSEC OK bit when
/// `dnssec` is set. Unsigned; over TCP.
pub async fn query(server: &Server, qname: &str, qtype: &str, dnssec: bool) -> Result<Answer> {
    let addr = server.addr;
    let t: Wire = qtype.to_ascii_uppercase().parse().map_err(|_| DnsIoError::Invalid(format!("{qtype:?} is not a record type")))?;
    let mut m = Message::query();
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(name(qname)?, t));
    let mut edns = Edns::new();
    edns.set_max_payload(4096).set_dnssec_ok(dnssec);
    m.edns = Some(edns);
    let bytes = m.to_vec().map_err(|e| DnsIoError::Invalid(format!("encoding the query: {e}")))?;
    let mut conn = Conn::open(server).await?;
    conn.send(&bytes).await?;
    let reply = decode(addr, "query", &conn.recv().await?)?;
    if reply.metadata.message_type != MessageType::Response {
        return Err(DnsIoError::Protocol { addr, what: "query".into(), detail: "not a response".into() });
    }
    let mut ans = Answer {
        rcode: reply.metadata.response_code.to_string(),
        authoritative: reply.metadata.authoritative,
        records: Vec::new(),
        rrsigs: Vec::new(),
    };
    for r in &reply.answers {
        if let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data {
            if sig.input().type_covered == t {
                ans.rrsigs.push(sig.input().sig_expiration.get());
            }
            continue;
        }
        let value = value_text(&r.data).map(|(_, v)| v).unwrap_or_else(|| r.data.to_string());
        ans.records.push(AnswerRecord { name: r.name.to_ascii(), rtype: r.record_type().to_string(), ttl: r.ttl, value });
    }
    Ok(ans)
}

/// The zone's SOA serial, and whether the SOA came signed with an unexpired RRSIG.
pub async fn soa(server: &Server, zone: &str) -> Result<(u32, bool)> {
    let addr = server.addr;
    let ans = query(server, zone, "SOA", true).await?;
    if ans.rcode != ResponseCode::NoError.to_string() || !ans.authoritative {
        return Err(DnsIoError::Refused { addr, what: format!("the SOA query for {zone} (is the server authoritative for it?)"), rcode: ans.rcode });
    }
    let serial = ans
        .records
        .iter()
        .find(|r| r.rtype == "SOA")
        .and_then(|r| r.value.split_whitespace().nth(2).and_then(|s| s.parse().ok()))
        .ok_or_else(|| DnsIoError::Protocol { addr, what: format!("the SOA query for {zone}"), detail: "no SOA in the answer".into() })?;
    let now = now_u32();
    Ok((serial, ans.rrsigs.iter().any(|exp| *exp > now)))
}

/// Split `changes` into UPDATE-sized batches of about `batch` changes, never
/// splitting one name's changes over two updates (see `dnsplan::batch_ends`).
pub fn batches(changes: &[Change], batch: usize) -> impl Iterator<Item = &[Change]> {
    let mut start = 0;
    pdc_core::dnsplan::batch_ends(changes, batch).into_iter().filter_map(move |end| {
        let chunk = changes.get(start..end);
        start = end;
        chunk
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn values_round_trip_through_record_data() {
        for (t, v) in [
            (RecordType::A, "10.15.0.5"),
            (RecordType::AAAA, "2001:db8::5"),
            (RecordType::CNAME, "www.daklak.gov.vn."),
            (RecordType::PTR, "host.so-y-te.daklak.gov.vn."),
            (RecordType::TXT, "v=spf1 -all"),
            (RecordType::MX, "10 mail.daklak.gov.vn."),
            (RecordType::SRV, "0 5 5060 sip.daklak.gov.vn."),
            (RecordType::CAA, "0 issue \"letsencrypt.org\""),
            (RecordType::CAA, "128 iodef \"mailto:soc@daklak.gov.vn\""),
            (RecordType::DNAME, "moi.daklak.gov.vn."),
        ] {
            let data = rdata(t, v).unwrap();
            assert_eq!(value_text(&data), Some((t, v.to_string())), "{t:?} {v}");
        }
        // A DNAME's data is its target in wire form, never compressed.
        assert_eq!(uncompressed("moi.x."), b"\x03moi\x01x\x00");
        assert_eq!(name_text(b"\x03MOI\x01x\x00"), Some("moi.x.".into()));
        assert_eq!(name_text(b"\x03mo"), None);
        let long = "x".repeat(600);
        assert_eq!(value_text(&rdata(RecordType::TXT, &long).unwrap()).unwrap().1, long);
    }

    #[test]
    fn updates_carry_prerequisites() {
        let s = |v: &str| RRset { name: "www.so-y-te.daklak.gov.vn.".into(), rtype: RecordType::A, ttl: 300, values: BTreeSet::from([v.to_string()]) };
        let m = update_message(
            "daklak.gov.vn",
            &[Change::Create(s("10.0.0.1")), Change::Replace { expect: s("10.0.0.2"), new: s("10.0.0.3") }, Change::Delete(s("10.0.0.4"))],
        )
        .unwrap();
        // Prerequisites travel in the answer section, updates in the authority section.
        let pre: Vec<(DNSClass, String)> = m.answers.iter().map(|r| (r.dns_class, r.data.to_string())).collect();
        assert_eq!(pre.len(), 3);
        assert_eq!(pre[0].0, DNSClass::NONE);
        assert_eq!(pre[1], (DNSClass::IN, "10.0.0.2".to_string()));
        let ups: Vec<DNSClass> = m.authorities.iter().map(|r| r.dns_class).collect();
        assert_eq!(ups, vec![DNSClass::IN, DNSClass::ANY, DNSClass::IN, DNSClass::ANY]);
    }

    #[test]
    fn a_cname_replacing_records_clears_the_name_in_the_same_update() {
        let set = |t: RecordType, v: &str| RRset { name: "hai.huyen-d.daklak.gov.vn.".into(), rtype: t, ttl: 300, values: BTreeSet::from([v.to_string()]) };
        let changes = [Change::Delete(set(RecordType::A, "10.15.1.5")), Change::Delete(set(RecordType::AAAA, "2001:db8::5")), Change::Create(set(RecordType::CNAME, "so-e.daklak.gov.vn."))];
        let m = update_message("daklak.gov.vn", &changes).unwrap();
        let ups: Vec<(DNSClass, String)> = m.authorities.iter().map(|r| (r.dns_class, r.record_type().to_string())).collect();
        // The two sets deleted, then every set at the name, then the CNAME.
        assert_eq!(ups, [(DNSClass::ANY, "A".to_string()), (DNSClass::ANY, "AAAA".into()), (DNSClass::ANY, "ANY".into()), (DNSClass::IN, "CNAME".into())]);
        // The prerequisites still pin the deleted values.
        assert_eq!(m.answers.len(), 3);
        // A CNAME created where nothing was deleted adds no delete-all.
        let m = update_message("daklak.gov.vn", &changes[2..]).unwrap();
        assert_eq!(m.authorities.len(), 1);
        // Batches never split one name's changes.
        let other = |n: &str| Change::Create(RRset { name: format!("{n}.daklak.gov.vn."), rtype: RecordType::A, ttl: 300, values: BTreeSet::from(["10.0.0.1".to_string()]) });
        let mut all = vec![other("a")];
        all.extend(changes.iter().cloned());
        all.push(other("z"));
        let sizes: Vec<usize> = batches(&all, 2).map(<[Change]>::len).collect();
        assert_eq!(sizes, [4, 1], "a batch of about 2 grows to hold the whole name");
        assert_eq!(batches(&all, 1).map(<[Change]>::len).collect::<Vec<_>>(), [1, 3, 1]);
    }

    fn soa(serial: u32) -> Record {
        let zone = name("daklak.gov.vn").unwrap();
        Record::from_rdata(zone.clone(), 300, RData::SOA(SOA::new(zone.clone(), zone, serial, 1, 1, 1, 1)))
    }

    fn a(host: &str, ip: &str) -> Record {
        Record::from_rdata(name(&format!("{host}.daklak.gov.vn")).unwrap(), 300, rdata(RecordType::A, ip).unwrap())
    }

    fn read(mut r: TransferReader, records: &[Record]) -> std::result::Result<Transfer, String> {
        for rec in records {
            r.push(rec)?;
        }
        if r.done() { Ok(r.out) } else { Err("not closed".into()) }
    }

    fn values(t: &Transfer) -> Vec<(String, Vec<String>)> {
        t.sets.values().map(|s| (s.name.clone(), s.values.iter().cloned().collect())).collect()
    }

    #[test]
    fn transfers_are_read_whole_or_refused() {
        let zone = || name("daklak.gov.vn").unwrap();
        let full = read(TransferReader::axfr(zone(), 0), &[soa(7), a("www", "10.0.0.1"), a("www", "10.0.0.2"), a("mail", "10.0.0.3"), soa(7)]).unwrap();
        assert_eq!(full.serial, 7);
        assert_eq!(full.records, 5);
        assert_eq!(values(&full), [("mail.daklak.gov.vn.".to_string(), vec!["10.0.0.3".to_string()]), ("www.daklak.gov.vn.".into(), vec!["10.0.0.1".into(), "10.0.0.2".into()])]);
        // Cut short, changed mid-way, not starting with the SOA: errors, never a smaller zone.
        assert!(read(TransferReader::axfr(zone(), 0), &[soa(7), a("www", "10.0.0.1")]).is_err());
        assert!(read(TransferReader::axfr(zone(), 0), &[soa(7), a("www", "10.0.0.1"), soa(8)]).is_err());
        assert!(read(TransferReader::axfr(zone(), 0), &[a("www", "10.0.0.1"), soa(7)]).is_err());

        // IXFR: two differences, 7 → 8 (www loses .2, gains .4) and 8 → 9 (mail goes, ns comes).
        let diffs = [soa(9), soa(7), a("www", "10.0.0.2"), soa(8), a("www", "10.0.0.4"), soa(8), a("mail", "10.0.0.3"), soa(9), a("ns", "10.0.0.9"), soa(9)];
        let inc = read(TransferReader::ixfr(zone(), full.clone(), 0), &diffs).unwrap();
        assert_eq!(inc.serial, 9);
        assert_eq!(
            values(&inc),
            [("ns.daklak.gov.vn.".to_string(), vec!["10.0.0.9".to_string()]), ("www.daklak.gov.vn.".into(), vec!["10.0.0.1".into(), "10.0.0.4".into()])]
        );
        // Up to date: one SOA.
        assert_eq!(read(TransferReader::ixfr(zone(), full.clone(), 0), &[soa(7)]).unwrap().serial, 7);
        assert!(read(TransferReader::ixfr(zone(), full.clone(), 0), &[soa(6)]).is_err());
        // The server sends the whole zone instead: it replaces what was held.
        let whole = read(TransferReader::ixfr(zone(), full.clone(), 0), &[soa(9), a("ns", "10.0.0.9"), soa(9)]).unwrap();
        assert_eq!(values(&whole), [("ns.daklak.gov.vn.".to_string(), vec!["10.0.0.9".to_string()])]);
        // Differences from another version than the one held, or cut short: errors.
        assert!(read(TransferReader::ixfr(zone(), full.clone(), 0), &[soa(9), soa(6), soa(9), soa(9)]).is_err());
        assert!(read(TransferReader::ixfr(zone(), full.clone(), 0), &diffs[..6]).is_err());
        assert!(read(TransferReader::ixfr(zone(), full, 0), &[soa(9), soa(7), soa(8), soa(10)]).is_err());
    }

    #[test]
    fn the_secret_is_never_printed() {
        let k = Key::from_base64("pdc-key", "hmac-sha256", "c2VjcmV0LXNlY3JldC1zZWNyZXQ=").unwrap();
        assert!(!format!("{k:?}").contains("c2Vj"));
        assert!(Key::from_base64("k", "hmac-sha256", "not base64!").is_err());
    }
}
