//! The embedded loop, the ADR's ESP32 sketch: the core on a microcontroller with no operating
//! system. The board has a monotonic millisecond timer and two line-based links: one to the MCP
//! client (a UART or USB-CDC port, one JSON-RPC message per line, as MCP's stdio transport) and one
//! to an upstream (here a tool server on a second UART). The loop is the whole host: feed the
//! engine what arrived with the time, perform what it hands back, sleep until its next deadline.
//!
//! - On the host (`cargo run --example embedded_loop`) the same loop runs against a scripted board
//!   and prints the exchange; it exits non-zero if the engine misbehaves (scripts/test-embedded.sh).
//! - For the ESP32-C3 (`--target riscv32imc-unknown-none-elf --no-default-features`) it is a
//!   `no_std`, `no_main` image with its own heap, panic handler and entry point; it links, and
//!   scripts/test-embedded.sh prints its size. A real board would take the timer, the UARTs and
//!   the entry from its HAL (esp-hal) instead of the scripted board below.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use mcp_edge_gateway::{ErrorObject, Gateway, GatewayConfig, Id, Message, Output, UpstreamId, UpstreamSpec};
use serde_json::json;

/// What the loop needs of a board.
pub trait Board {
    /// Milliseconds since boot.
    fn millis(&mut self) -> u64;
    /// A complete line from the client, if one arrived.
    fn client_line(&mut self) -> Option<Vec<u8>>;
    /// A complete line from the upstream, if one arrived.
    fn upstream_line(&mut self) -> Option<Vec<u8>>;
    fn to_client(&mut self, line: &[u8]);
    fn to_upstream(&mut self, line: &[u8]);
    /// Wait for input or until `deadline` (a real board sleeps until an interrupt or its timer).
    fn idle(&mut self, deadline: Option<u64>);
    /// False once the board wants the loop to stop (never, on a real one).
    fn running(&self) -> bool;
}

/// The gateway's main loop: one client session, one upstream.
pub fn run(board: &mut impl Board) -> Gateway {
    let cfg = GatewayConfig { upstreams: alloc::vec![UpstreamSpec::named("sensors")], ..Default::default() };
    let mut gw = Gateway::new(cfg).expect("the embedded configuration is valid");
    // A real board seeds from its hardware RNG (the ESP32's `RNG_DATA_REG`).
    gw.seed([7; 32]);
    let up = UpstreamId(0);
    let now = board.millis();
    gw.upstream_connected(now, up);
    let session = gw.open_session(now);
    while board.running() {
        let now = board.millis();
        while let Some(line) = board.client_line() {
            match Message::parse(&line) {
                Ok(m) => gw.handle_client(now, session, m),
                // Not JSON-RPC: the stdio transport answers a parse error with id null.
                Err(e) => board.to_client(Message::error(None, e.to_error()).to_json().as_bytes()),
            }
        }
        while let Some(line) = board.upstream_line() {
            if let Ok(m) = Message::parse(&line) {
                gw.handle_upstream(now, up, m, None);
            }
        }
        if gw.poll_timeout().is_some_and(|t| t <= now) {
            gw.handle_timeout(now);
        }
        while let Some(o) = gw.poll_output() {
            match o {
                Output::ToClient { message, .. } => board.to_client(message.to_json().as_bytes()),
                Output::ToUpstream { message, .. } => board.to_upstream(message.to_json().as_bytes()),
                // Logs, store writes (no flash store in this sketch) and sampling (no provider) are
                // dropped here; a board with flash would implement `Store` on it.
                _ => {}
            }
        }
        board.idle(gw.poll_timeout());
    }
    gw
}

/// A board whose client sends a script, one line per turn (as a UART delivers them), and whose
/// upstream is a one-tool server answering in the same firmware: what runs on the host, under WASI
/// and in the bare-metal image alike.
pub struct Scripted {
    clock: u64,
    client_in: VecDeque<Vec<u8>>,
    requests: usize,
    upstream_in: VecDeque<Vec<u8>>,
    pub client_out: Vec<Vec<u8>>,
    pub turns: u32,
    turns_fed: u32,
}

impl Scripted {
    /// A client that initialises and calls the sensor's tool.
    pub fn new() -> Scripted {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "uart", "version": "1"}}});
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "sensors__temperature", "arguments": {}}});
        Scripted::with_client([init, call].iter().map(|v| serde_json::to_vec(v).expect("json")).collect())
    }

    /// A client that sends these lines.
    pub fn with_client(lines: Vec<Vec<u8>>) -> Scripted {
        let requests = lines.iter().filter(|l| Message::parse(l).map_or(true, |m| m.is_request())).count();
        let client_in = lines.into_iter().collect();
        Scripted {
            clock: 0,
            client_in,
            requests,
            upstream_in: VecDeque::new(),
            client_out: Vec::new(),
            turns: 0,
            turns_fed: 0,
        }
    }

    /// The client's answer to request `id`, if it came.
    pub fn answer(&self, id: i64) -> Option<serde_json::Value> {
        self.client_out.iter().find_map(|l| match Message::parse(l) {
            Ok(Message::Response { id: Id::Num(n), result, .. }) if n == id => Some(result),
            _ => None,
        })
    }

    fn answered(&self) -> usize {
        let answer = |l: &Vec<u8>| matches!(Message::parse(l), Ok(Message::Response { .. } | Message::Error { .. }));
        self.client_out.iter().filter(|l| answer(l)).count()
    }
}

impl Default for Scripted {
    fn default() -> Self {
        Scripted::new()
    }
}

impl Board for Scripted {
    fn millis(&mut self) -> u64 {
        self.clock
    }
    fn client_line(&mut self) -> Option<Vec<u8>> {
        // One line per turn.
        if self.turns_fed == self.turns + 1 {
            return None;
        }
        self.turns_fed = self.turns + 1;
        self.client_in.pop_front()
    }
    fn upstream_line(&mut self) -> Option<Vec<u8>> {
        self.upstream_in.pop_front()
    }
    fn to_client(&mut self, line: &[u8]) {
        self.client_out.push(line.to_vec());
    }
    fn to_upstream(&mut self, line: &[u8]) {
        let Ok(Message::Request { id, method, .. }) = Message::parse(line) else { return };
        let reply = match method.as_str() {
            "initialize" => Message::response(
                id,
                json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                       "serverInfo": {"name": "sensors", "version": "1"}}),
            ),
            "tools/list" => Message::response(
                id,
                json!({"tools": [{"name": "temperature", "inputSchema": {"type": "object"},
                                  "annotations": {"readOnlyHint": true}}]}),
            ),
            "tools/call" => Message::response(id, json!({"content": [{"type": "text", "text": "21.5 °C"}]})),
            _ => Message::error(Some(id), ErrorObject::new(-32601, "method not found")),
        };
        self.upstream_in.push_back(reply.to_json().into_bytes());
    }
    fn idle(&mut self, deadline: Option<u64>) {
        self.turns += 1;
        // Nothing arrives between turns here: jump to the next deadline, or a millisecond on.
        self.clock = deadline.map_or(self.clock + 1, |d| d.max(self.clock + 1)).min(self.clock + 1000);
    }
    fn running(&self) -> bool {
        let done = self.client_in.is_empty() && self.answered() >= self.requests;
        !done && self.turns < 1000
    }
}

/// With `--stdin`, the client's lines come from standard input (the wasm32-wasip1 test pipes them
/// in); the answers go to standard output either way.
#[cfg(not(target_os = "none"))]
fn main() {
    use std::io::BufRead;
    let from_stdin = std::env::args().any(|a| a == "--stdin");
    let mut board = if from_stdin {
        let lines = std::io::stdin().lock().lines().map(|l| l.expect("stdin").into_bytes());
        Scripted::with_client(lines.filter(|l| !l.is_empty()).collect())
    } else {
        Scripted::new()
    };
    let gw = run(&mut board);
    for line in &board.client_out {
        println!("{}", String::from_utf8_lossy(line));
    }
    assert!(!board.running(), "every request was answered within 1000 turns");
    if !from_stdin {
        let answer = board.answer(2).expect("the tool call was answered");
        assert_eq!(answer["content"][0]["text"], "21.5 °C");
    }
    eprintln!("answered in {} turns, {} ms of board time; {:?}", board.turns, board.clock, gw.stats());
}

/// The bare-metal image: a heap, a panic handler and an entry point, which a HAL would provide.
#[cfg(target_os = "none")]
mod bare {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// The heap: 128 KiB of the ESP32-C3's 400 KiB SRAM. A bump allocator keeps the sketch short;
    /// firmware uses a real one (embedded-alloc's, or esp-alloc).
    const HEAP: usize = 128 * 1024;
    struct Arena {
        bytes: UnsafeCell<[u8; HEAP]>,
        next: AtomicUsize,
    }
    // SAFETY: one hart, and no interrupt handler allocates.
    unsafe impl Sync for Arena {}

    unsafe impl GlobalAlloc for Arena {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let base = self.bytes.get() as usize;
            // The C3 has no atomic read-modify-write (riscv32imc: no `a` extension); with one hart
            // and no allocation in interrupts, a load and a store are enough.
            let start = (base + self.next.load(Ordering::Relaxed)).next_multiple_of(l.align()) - base;
            let end = start + l.size();
            if end > HEAP {
                return core::ptr::null_mut();
            }
            self.next.store(end, Ordering::Relaxed);
            (base + start) as *mut u8
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[global_allocator]
    static ALLOC: Arena = Arena { bytes: UnsafeCell::new([0; HEAP]), next: AtomicUsize::new(0) };

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    #[unsafe(no_mangle)]
    extern "C" fn _start() -> ! {
        let mut board = super::Scripted::new();
        let _ = super::run(&mut board);
        loop {}
    }
}
