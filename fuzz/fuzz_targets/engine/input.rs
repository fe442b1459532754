//! The input: a `Setup` (the upstreams, a group, a sampling chain, limits) and then `Action`s, each
//! an `arbitrary` choice of what a host could report next, with the JSON values and spots where a
//! scenario puts mutated or junk values.

use super::*;

#[derive(Arbitrary, Debug)]
pub(crate) struct Setup {
    pub(crate) upstreams: [UpSetup; 3],
    /// 1 to 3 upstreams: `a`, `b`, `c`.
    pub(crate) count: u8,
    /// `a` and `b` serve as the group `grp`.
    pub(crate) group: bool,
    /// 0: no sampling chain; 1: an OpenAI-compatible provider, then the client; 2: the provider
    /// alone; 3: the host's built-in `callback`, then the provider.
    pub(crate) sampling: u8,
    pub(crate) page_size: u8,
    pub(crate) timeout: u8,
    pub(crate) grace: u8,
    pub(crate) input_wait: u8,
    pub(crate) cache_bytes: u8,
    pub(crate) queue_max: u8,
    /// Take every link down before the final run of the clock (else the upstreams just go silent).
    pub(crate) end_down: bool,
    /// Connect every upstream before the first action.
    pub(crate) connected: bool,
}

#[derive(Arbitrary, Debug)]
pub(crate) struct UpSetup {
    /// None: probe; Some(false): legacy; Some(true): modern.
    pub(crate) era: Option<bool>,
    pub(crate) prefixed: bool,
    /// 0: nothing queued offline; 1: `*`; 2: `echo`; 3: `@idempotentHint`.
    pub(crate) queue: u8,
    pub(crate) ttl: Option<u16>,
    /// The server behind the link speaks the modern era (answers `server/discover`).
    pub(crate) modern_server: bool,
    /// What the harness answers by itself, like a real server would, while the link is up (the
    /// actions can still answer anything first): bit 0 the handshake and pings, bit 1 lists
    /// (two pages each), bit 2 calls, reads, prompts and completions (not `slow`).
    pub(crate) auto: u8,
}

#[derive(Arbitrary, Debug)]
pub(crate) enum Action {
    Open {
        init: Option<Caps>,
    },
    Close(u8),
    Auth {
        s: u8,
        ctx: u8,
    },
    Admin(u8),
    Request {
        s: u8,
        r: ClientReq,
    },
    Notify {
        s: u8,
        n: ClientNote,
    },
    Answer {
        s: u8,
        which: u8,
        a: ClientAnswer,
    },
    RawClient {
        s: u8,
        bytes: Vec<u8>,
    },
    Connect(u8),
    Disconnect(u8),
    Expired(u8),
    Lost {
        u: u8,
        which: u8,
    },
    Undelivered {
        u: u8,
        which: u8,
    },
    UpAnswer {
        u: u8,
        which: u8,
        a: UpReply,
        keep: bool,
        related: bool,
    },
    UpRequest {
        u: u8,
        r: UpReq,
        related: Option<u8>,
    },
    UpNotify {
        u: u8,
        n: UpNote,
    },
    RawUp {
        u: u8,
        bytes: Vec<u8>,
        related: Option<u8>,
    },
    Store(StoreOutcome),
    /// The process dies and starts again on its store (when the byte is a multiple of 8: a
    /// mutated input is full of 0xff and 0x00, and the first and last variants would win).
    Restart(u8),
    Sample {
        which: u8,
        a: SampleOutcome,
    },
    Advance(Delay),
    Timeout,
    Nudge,
    WallClock(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub(crate) roots: bool,
    pub(crate) sampling: bool,
    /// 0: none; 1: form; 2: form and URL.
    pub(crate) elicitation: u8,
    pub(crate) tasks: bool,
}

impl Caps {
    pub(crate) fn value(self) -> Value {
        let mut c = json!({});
        if self.roots {
            c["roots"] = json!({"listChanged": true});
        }
        if self.sampling {
            c["sampling"] = json!({});
        }
        match self.elicitation % 3 {
            1 => c["elicitation"] = json!({}),
            2 => c["elicitation"] = json!({"form": {}, "url": {}}),
            _ => {}
        }
        if self.tasks {
            c["tasks"] = json!({"requests": {"tools": {"call": {}}}});
        }
        c
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
pub(crate) enum MethodPick {
    Initialize,
    Ping,
    Discover,
    ToolsList,
    ToolsCall,
    PromptsList,
    PromptsGet,
    ResourcesList,
    ResourcesRead,
    TemplatesList,
    Subscribe,
    Unsubscribe,
    Complete,
    SetLevel,
    Listen,
    TasksGet,
    TasksResult,
    TasksList,
    TasksCancel,
    Unknown,
}

#[derive(Arbitrary, Debug)]
pub(crate) struct ClientReq {
    pub(crate) method: MethodPick,
    pub(crate) str_id: bool,
    pub(crate) modern: bool,
    pub(crate) caps: Caps,
    /// Which name, URI, cursor or task (harvested from what the client was shown, else a guess).
    pub(crate) target: u8,
    pub(crate) cursor: Option<u8>,
    pub(crate) progress: bool,
    pub(crate) args: Args,
    /// Ask for a task (2025-11-25 `task`, or the modern tasks extension).
    pub(crate) task: Option<Ttl>,
    /// Retry a call answered with `input_required`, with answers and its `requestState`.
    pub(crate) retry: Option<u8>,
    pub(crate) mutate: Option<(Spot, Json)>,
}

/// The task a client asks for (its `ttl`: how long the result is kept).
#[derive(Arbitrary, Debug)]
pub(crate) enum Ttl {
    Absent,
    Short,
    Minutes(u16),
    Max,
    Any(u64),
    Weird(Json),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum Args {
    Absent,
    Empty,
    Some(u8),
    Null,
    Image,
    Any(Json),
}

/// Where a mutation lands in a message's params or result.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum Spot {
    Whole,
    Meta,
    Key(u8),
}

pub(crate) const KEYS: &[&str] = &[
    "name",
    "arguments",
    "uri",
    "cursor",
    "_meta",
    "taskId",
    "requestState",
    "inputResponses",
    "task",
    "tools",
    "prompts",
    "resources",
    "resourceTemplates",
    "nextCursor",
    "resultType",
    "capabilities",
    "supportedVersions",
    "protocolVersion",
    "content",
    "contents",
    "inputRequests",
    "ttlMs",
    "cacheScope",
    "isError",
    "serverInfo",
    "progressToken",
    "level",
    "ref",
    "notifications",
    "messages",
    "completion",
];

#[derive(Arbitrary, Debug)]
pub(crate) enum ClientNote {
    Initialized,
    Cancelled { which: u8, raw: Option<i8> },
    RootsChanged,
    Progress(u8),
    Other,
}

#[derive(Arbitrary, Debug)]
pub(crate) enum ClientAnswer {
    Good,
    Decline,
    Error(i16),
    Any(Json),
    WrongId(i16),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum UpReply {
    Good { items: Vec<u8>, next: Option<u8>, flags: u8 },
    Input { methods: Vec<u8>, state: bool },
    Error(i16),
    Empty,
    Any(Json),
    Mutated { items: Vec<u8>, spot: Spot, v: Json },
}

#[derive(Arbitrary, Debug)]
pub(crate) enum UpReq {
    Elicit { url: bool },
    Sample { image: bool, hint: u8 },
    Roots,
    Ping,
    Other,
    Any(Json),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum UpNote {
    Progress { which: u8, progress: u8, total: Option<u8> },
    Cancelled(i8),
    ListChanged(u8),
    Updated(u8),
    Log,
    Acknowledged,
    Other(Json),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum StoreOutcome {
    Ok,
    Full,
    Failed,
    Corrupt,
}

#[derive(Arbitrary, Debug)]
pub(crate) enum SampleOutcome {
    Chat { tool_call: bool, stop: bool },
    Mcp,
    Fail,
    Any(Json),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum Delay {
    Ms(u8),
    Seconds(u8),
    Minutes(u8),
    Days(u8),
}

/// A small JSON value: what a peer may put anywhere.
#[derive(Debug)]
pub(crate) struct Json(pub(crate) Value);

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Json(json_value(u, 0)?))
    }
}

pub(crate) fn json_value(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Value> {
    let pick = if depth >= 3 { u.int_in_range(0..=5)? } else { u.int_in_range(0..=8)? };
    Ok(match pick {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(f64::from(u.arbitrary::<i16>()?) / 4.0),
        4 => Value::from(u.arbitrary::<String>()?),
        5 => Value::from(*u.choose(KEYS)?),
        6 | 7 => {
            let n = u.int_in_range(0..=4)?;
            let mut m = Map::new();
            for _ in 0..n {
                let k = if u.arbitrary()? { (*u.choose(KEYS)?).to_string() } else { u.arbitrary::<String>()? };
                m.insert(k, json_value(u, depth + 1)?);
            }
            Value::Object(m)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| json_value(u, depth + 1)).collect::<arbitrary::Result<_>>()?)
        }
    })
}
