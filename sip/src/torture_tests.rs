//! Parser tests after RFC 4475 ("SIP Torture Test Messages"): the valid
//! messages genki must understand, the invalid ones it must refuse with an
//! error (never a panic), and mutation runs over every byte position.

use crate::message::{Message, Method, ParseError};

fn parse(s: &str) -> Result<Message, ParseError> {
    Message::parse(s.as_bytes())
}

const BASE: &str = "INVITE sip:vivekg@chair-dnrc.example.com SIP/2.0\r\n\
To: sip:vivekg@chair-dnrc.example.com\r\n\
From: <sip:jdrosen@example.com>;tag=98asjd8\r\n\
Max-Forwards: 70\r\n\
Call-ID: torture.1@192.0.2.1\r\n\
CSeq: 9 INVITE\r\n\
Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK390skdjuw\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn valid_compact_folded_unknown_headers() {
    // §3.1.1.1-style: folding, odd case, compact forms, unknown headers
    // with unusual values, leading zeros in numbers.
    let m = parse(
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : 0\r\n\
cseq: 0009\r\n  INVITE\r\n\
v: SIP/2.0/UDP 192.0.2.2;rport;branch=390skdjuw\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\r\n",
    )
    .expect("tortuous but valid INVITE parses");
    assert_eq!(m.cseq, 9);
    assert_eq!(m.call_id, "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.to_tag.as_deref(), Some("1918181833n"));
    assert_eq!(m.from_tag.as_deref(), Some("98asjd8"));
    assert_eq!(
        m.header("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
}

#[test]
fn valid_unknown_method_and_no_reason_phrase() {
    // §3.1.1.4 intmeth-like: an extension method is carried by name.
    let m = parse(&BASE.replace("INVITE", "NEWMETHOD")).unwrap();
    assert_eq!(m.method(), Some(&Method::Other("NEWMETHOD".into())));
    // §3.1.1.13 noreason: "SIP/2.0 100 " with an empty reason phrase.
    let resp = "SIP/2.0 100 \r\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n\
Call-ID: noreason.asndj203insdf99223ndf\r\nCSeq: 35 INVITE\r\n\
From: <sip:user@example.com>;tag=39ansfi3\r\nTo: <sip:user@example.edu>;tag=902jndnke3\r\n\
Content-Length: 0\r\n\r\n";
    let m = parse(resp).unwrap();
    assert_eq!(m.status(), Some(100));
}

#[test]
fn valid_missing_content_length_over_udp_takes_the_rest() {
    let m = parse(&format!(
        "{}v=0\r\n",
        BASE.replace("Content-Length: 0\r\n", "")
    ))
    .unwrap();
    assert_eq!(m.body, b"v=0\r\n");
}

fn assert_invalid(name: &str, s: &str) {
    assert!(parse(s).is_err(), "{name} must be refused");
}

#[test]
fn invalid_messages_are_errors() {
    // §3.1.2.2 clerr: Content-Length larger than the message.
    assert!(matches!(
        parse(&BASE.replace("Content-Length: 0", "Content-Length: 9999")),
        Err(ParseError::Incomplete(_))
    ));
    // §3.1.2.3 ncl/scalar02: negative Content-Length, CSeq overflow.
    assert_invalid(
        "ncl",
        &BASE.replace("Content-Length: 0", "Content-Length: -999"),
    );
    assert_invalid(
        "scalar02",
        &BASE.replace("CSeq: 9 INVITE", "CSeq: 36893488147419103232 INVITE"),
    );
    // §3.1.2.4/§3.1.2.19 bigcode: an overlarge status code.
    let resp = "SIP/2.0 4294967301 better not break the receiver\r\n\
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\nCall-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\r\n\
CSeq: 353494 INVITE\r\nFrom: <sip:user@example.com>;tag=39ansfi3\r\nTo: <sip:user@example.edu>;tag=902jndnke3\r\n\
Content-Length: 0\r\n\r\n";
    assert_invalid("bigcode", resp);
    assert_invalid("status 99", &resp.replace("4294967301", "099"));
    // §3.1.2.6 quotbal: unterminated quoted display name.
    assert_invalid(
        "quotbal",
        &BASE.replace("From: <sip:", "From: \"Mr. J. User <sip:"),
    );
    // §3.1.2.7 ltgtruri: Request-URI in angle brackets.
    assert_invalid(
        "ltgtruri",
        &BASE.replace(
            "INVITE sip:vivekg@chair-dnrc.example.com SIP/2.0",
            "INVITE <sip:user@example.com> SIP/2.0",
        ),
    );
    // §3.1.2.8 lwsruri: whitespace inside the Request-URI.
    assert_invalid(
        "lwsruri",
        &BASE.replace(
            "sip:vivekg@chair-dnrc.example.com SIP",
            "sip:user@example.com; lr SIP",
        ),
    );
    // §3.1.2.9 lwsstart: several spaces between request-line elements.
    assert_invalid("lwsstart", &BASE.replace("INVITE sip:", "INVITE  sip:"));
    // §3.1.2.10 trws: trailing whitespace after the version.
    assert_invalid("trws", &BASE.replace("SIP/2.0\r\nTo", "SIP/2.0 \r\nTo"));
    // §3.1.2.16 badvers: unknown protocol version.
    assert_invalid("badvers", &BASE.replace("SIP/2.0\r\nTo", "SIP/7.0\r\nTo"));
    // §3.1.2.17 mismatch01: CSeq method differs from the request method.
    assert_invalid(
        "mismatch01",
        &BASE.replace("CSeq: 9 INVITE", "CSeq: 9 OPTIONS"),
    );
    // §3.1.2.18 mismatch02: unknown method, CSeq says INVITE.
    assert_invalid(
        "mismatch02",
        &BASE.replace("INVITE sip:vivekg", "NEWMETHOD sip:vivekg"),
    );
    // §3.1.3 insuf: mandatory headers missing.
    for h in ["Call-ID", "From", "To", "CSeq", "Via"] {
        let stripped: String = BASE
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(&format!("{h}:")))
            .collect();
        assert!(
            matches!(parse(&stripped), Err(ParseError::MissingHeader(_))),
            "missing {h}"
        );
    }
    assert_invalid("not SIP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_invalid("binary", "\u{0}\u{1}\u{2}\r\n\r\n");
    assert!(matches!(parse("\r\n\r\n"), Err(ParseError::Incomplete(_))));
}

/// Tiny deterministic PRNG (xorshift) so the mutation run repeats exactly.
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn mutations_and_truncations_never_panic() {
    let base = BASE.as_bytes();
    for cut in 0..base.len() {
        let _ = Message::parse(&base[..cut]);
    }
    let mut seed = 0x9E3779B97F4A7C15u64;
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut m = base.to_vec();
        let n = 1 + xorshift(&mut seed) % 4;
        for _ in 0..n {
            let i = (xorshift(&mut seed) as usize) % m.len();
            match xorshift(&mut seed) % 3 {
                0 => m[i] = xorshift(&mut seed) as u8,
                1 => {
                    m.remove(i);
                }
                _ => m.insert(i, b"\r\n :;<>\"\\,=0"[(xorshift(&mut seed) % 12) as usize]),
            }
        }
        if Message::parse(&m).is_ok() {
            parsed += 1;
        }
    }
    // Most single-byte mutations still leave a usable message; all others are errors.
    assert!(parsed > 1000, "only {parsed} mutated messages parsed");
}
