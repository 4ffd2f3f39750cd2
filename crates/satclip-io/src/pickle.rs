//! A pickle reader that can never execute code.
//!
//! Python's unpickler imports and calls whatever a file names. This one only builds values: a
//! `GLOBAL` becomes an inert name, a call (`REDUCE`, `NEWOBJ`) of one of the few callables that
//! torch checkpoints need (`_rebuild_tensor_v2`, `OrderedDict`, …) is interpreted by hand, and any
//! other call becomes an opaque [`Object`] that records its class name and arguments. Lengths are
//! checked against the bytes that remain before anything is allocated, so a lying file gives an
//! error, never a huge allocation or a panic. The number of values a file may build is capped,
//! and nothing walks or drops a value tree by recursion, so a deeply nested file cannot overflow
//! the stack.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Values a pickle may build. A torch checkpoint's object tree has thousands; a file of one-byte
/// opcodes would otherwise turn each byte into a heap allocation.
pub const MAX_VALUES: usize = 1 << 22;
/// Hops through an object's BUILD state while looking for its items: a state that is the object
/// itself (or a longer cycle) must end the search, not the process.
const MAX_STATE_HOPS: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("pickle byte {offset}: {message}")]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

/// Element type of a torch storage, from its `torch.*Storage` class name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageDtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageDtype {
    fn from_class(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::F64 | Self::F32 | Self::F16 | Self::BF16)
    }

    pub fn size_bytes(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "float64",
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
            Self::I64 => "int64",
            Self::I32 => "int32",
            Self::I16 => "int16",
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::Bool => "bool",
        }
    }
}

/// A storage record named by a persistent id: `('storage', torch.XStorage, key, location, numel)`.
#[derive(Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: StorageDtype,
    pub numel: usize,
}

/// A strided view into a storage, from `torch._utils._rebuild_tensor_v2`.
#[derive(Debug, PartialEq)]
pub struct TensorRef {
    pub storage: Rc<StorageRef>,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// An instance of a class the reader does not interpret, kept as data.
#[derive(Debug, Default)]
pub struct Object {
    pub class: String,
    pub args: Vec<Value>,
    pub state: Option<Value>,
    /// Items set on it as on a dict (dict subclasses such as Lightning's `AttributeDict`).
    pub items: Vec<(Value, Value)>,
}

#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64, as little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Set(Rc<RefCell<Vec<Value>>>),
    Global(Rc<str>),
    Object(Rc<RefCell<Object>>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Key-value pairs of a dict, an `OrderedDict` or a dict-like object. A key set twice keeps
    /// its first position and its last value, as a Python dict does.
    pub fn dict_items(&self) -> Option<Vec<(Value, Value)>> {
        let mut current = self.clone();
        for _ in 0..MAX_STATE_HOPS {
            let next = match &current {
                Value::Dict(d) => return Some(last_value_wins(&d.borrow())),
                Value::Object(o) => {
                    let o = o.borrow();
                    if !o.items.is_empty() {
                        return Some(last_value_wins(&o.items));
                    }
                    // Objects pickled by `__reduce_ex__` keep their attributes in the BUILD state.
                    o.state.clone()?
                }
                _ => return None,
            };
            current = next;
        }
        None
    }

    /// Looks up a string key in a dict-like value.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.dict_items()?.into_iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// A short description for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("bool {b}"),
            Value::Int(i) => format!("int {i}"),
            Value::BigInt(_) => "big int".into(),
            Value::Float(f) => format!("float {f}"),
            Value::Str(s) => format!("str {s:?}"),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Set(_) => "set".into(),
            Value::Global(g) => format!("global {g}"),
            Value::Object(o) => format!("object of class {}", o.borrow().class),
            Value::Storage(_) => "storage".into(),
            Value::Tensor(_) => "tensor".into(),
        }
    }
}

/// Keys a dict may repeat and Python would merge: strings, integers and booleans.
#[derive(PartialEq, Eq, Hash)]
enum ScalarKey<'a> {
    Str(&'a str),
    Int(i64),
}

fn last_value_wins(pairs: &[(Value, Value)]) -> Vec<(Value, Value)> {
    let mut first_at: HashMap<ScalarKey, usize> = HashMap::new();
    let mut out: Vec<(Value, Value)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let key = match k {
            Value::Str(s) => Some(ScalarKey::Str(s)),
            Value::Int(i) => Some(ScalarKey::Int(*i)),
            Value::Bool(b) => Some(ScalarKey::Int(*b as i64)),
            _ => None,
        };
        match key.and_then(|key| match first_at.get(&key) {
            Some(&at) => Some(at),
            None => {
                first_at.insert(key, out.len());
                None
            }
        }) {
            Some(at) => out[at].1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// Dropping a value tree by recursion overflows the stack on a million nested tuples: children
/// that this value alone owns are moved onto a work list and dropped one level at a time.
impl Drop for Value {
    fn drop(&mut self) {
        let mut work = Vec::new();
        take_children(self, &mut work);
        while let Some(mut v) = work.pop() {
            take_children(&mut v, &mut work);
        }
    }
}

fn take_children(value: &mut Value, work: &mut Vec<Value>) {
    match value {
        Value::Tuple(items) => {
            if let Some(items) = Rc::get_mut(items) {
                work.extend(items.iter_mut().map(|v| std::mem::replace(v, Value::None)));
            }
        }
        Value::List(items) | Value::Set(items) => {
            if let Some(items) = Rc::get_mut(items) {
                work.append(items.get_mut());
            }
        }
        Value::Dict(pairs) => {
            if let Some(pairs) = Rc::get_mut(pairs) {
                for (k, v) in pairs.get_mut().drain(..) {
                    work.push(k);
                    work.push(v);
                }
            }
        }
        Value::Object(o) => {
            if let Some(o) = Rc::get_mut(o) {
                let o = o.get_mut();
                work.append(&mut o.args);
                work.extend(o.state.take());
                for (k, v) in o.items.drain(..) {
                    work.push(k);
                    work.push(v);
                }
            }
        }
        _ => {}
    }
}

/// Decodes a pickle. `STOP` ends it; the value on top of the stack is returned. A value that
/// contains itself (which no checkpoint does) is refused: reference-counted cycles would never be
/// freed, and a long-running process would leak with every such file.
pub fn unpickle(data: &[u8]) -> Result<Value, PickleError> {
    let mut machine = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        built: 0,
        containers: Vec::new(),
    };
    let result = machine.run();
    let reachable = match &result {
        Ok(root) => reachable_nodes(root),
        Err(_) => None,
    };
    // Empty every mutable container the result does not hold (all of them after an error or a
    // cycle): that breaks any cycle among them, so everything not returned is freed.
    for container in std::mem::take(&mut machine.containers) {
        if reachable.as_ref().is_none_or(|r| !r.contains(&node_id(&container))) {
            clear(&container);
        }
    }
    match (result, reachable) {
        (Ok(root), Some(_)) => Ok(root),
        (Ok(_), None) => Err(PickleError { offset: data.len(), message: "the object tree contains itself".into() }),
        (Err(e), _) => Err(e),
    }
}

fn node_id(value: &Value) -> usize {
    match value {
        Value::Tuple(t) => Rc::as_ptr(t) as *const () as usize,
        Value::List(l) | Value::Set(l) => Rc::as_ptr(l) as *const () as usize,
        Value::Dict(d) => Rc::as_ptr(d) as *const () as usize,
        Value::Object(o) => Rc::as_ptr(o) as *const () as usize,
        _ => 0,
    }
}

/// The values directly inside a container; `None` for a scalar.
fn children(value: &Value) -> Option<Vec<Value>> {
    Some(match value {
        Value::Tuple(t) => t.to_vec(),
        Value::List(l) | Value::Set(l) => l.borrow().clone(),
        Value::Dict(d) => d.borrow().iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
        Value::Object(o) => {
            let o = o.borrow();
            let mut all = o.args.clone();
            all.extend(o.state.clone());
            all.extend(o.items.iter().flat_map(|(k, v)| [k.clone(), v.clone()]));
            all
        }
        _ => return None,
    })
}

/// Every container reachable from `root`, by an iterative depth-first walk that visits a shared
/// value once; `None` when a container is reached again while it is still being walked (a cycle).
fn reachable_nodes(root: &Value) -> Option<std::collections::HashSet<usize>> {
    const ON_PATH: bool = false;
    let mut state: HashMap<usize, bool> = HashMap::new();
    let mut path: Vec<(usize, Vec<Value>)> = Vec::new();
    if let Some(c) = children(root) {
        state.insert(node_id(root), ON_PATH);
        path.push((node_id(root), c));
    }
    while let Some((id, pending)) = path.last_mut() {
        let Some(child) = pending.pop() else {
            state.insert(*id, !ON_PATH);
            path.pop();
            continue;
        };
        let Some(grandchildren) = children(&child) else { continue };
        let child_id = node_id(&child);
        match state.get(&child_id) {
            Some(&ON_PATH) => return None,
            Some(_) => {}
            None => {
                state.insert(child_id, ON_PATH);
                path.push((child_id, grandchildren));
            }
        }
    }
    Some(state.into_keys().collect())
}

fn clear(container: &Value) {
    match container {
        Value::List(l) | Value::Set(l) => drop(std::mem::take(&mut *l.borrow_mut())),
        Value::Dict(d) => drop(std::mem::take(&mut *d.borrow_mut())),
        Value::Object(o) => drop(std::mem::take(&mut *o.borrow_mut())),
        _ => {}
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Values pushed so far, against [`MAX_VALUES`].
    built: usize,
    /// Every mutable container made, so that those not returned can be emptied at the end.
    containers: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl<'a> Machine<'a> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError { offset: self.pos, message: message.into() })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if n > self.data.len() - self.pos {
            return self.fail(format!("truncated: {n} bytes announced, {} remain", self.data.len() - self.pos));
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.fail("unterminated text line");
        };
        let line = std::str::from_utf8(&rest[..end]).or_else(|_| self.fail("text line is not UTF-8"))?;
        self.pos += end + 1;
        Ok(line)
    }

    fn len_u64(&mut self, n: u64) -> Result<usize, PickleError> {
        usize::try_from(n).or_else(|_| self.fail("length does not fit in memory"))
    }

    fn push(&mut self, v: Value) {
        self.built += 1;
        let fresh = match &v {
            Value::List(l) | Value::Set(l) => Rc::strong_count(l) == 1,
            Value::Dict(d) => Rc::strong_count(d) == 1,
            Value::Object(o) => Rc::strong_count(o) == 1,
            _ => false,
        };
        if fresh {
            self.containers.push(v.clone());
        }
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(v) if self.marks.last().is_none_or(|&m| self.stack.len() >= m) => Ok(v),
            Some(v) => {
                // Popping below the innermost mark: the file is malformed; keep the error precise.
                self.push(v);
                self.fail("stack underflow below a MARK")
            }
            None => self.fail("stack underflow"),
        }
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        let pos = self.pos;
        self.stack.last_mut().ok_or(PickleError { offset: pos, message: "stack underflow".into() })
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(mark) = self.marks.pop() else { return self.fail("no MARK on the stack") };
        if mark > self.stack.len() {
            return self.fail("MARK above the stack");
        }
        Ok(self.stack.split_off(mark))
    }

    fn string(&mut self, n: usize) -> Result<Value, PickleError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(s.into())),
            Err(_) => self.fail("string is not UTF-8"),
        }
    }

    fn memo_get(&mut self, index: u64) -> Result<(), PickleError> {
        match self.memo.get(&index) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => self.fail(format!("memo entry {index} was never stored")),
        }
    }

    fn memo_put(&mut self, index: u64) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(index, v);
        Ok(())
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            if self.built > MAX_VALUES {
                return self.fail(format!("builds more than {MAX_VALUES} values: not a checkpoint's object tree"));
            }
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return self.fail(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.le::<8>()?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Value::Int(v.into()));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as u64 } else { u32::from_le_bytes(self.le()?) as u64 };
                    let n = self.len_u64(n)?;
                    let bytes = self.take(n)?;
                    self.push(long_from_bytes(bytes));
                }
                b'I' | b'L' => {
                    let line = self.line()?.trim_end_matches('L');
                    let v = match line {
                        "01" if op == b'I' => Value::Bool(true),
                        "00" if op == b'I' => Value::Bool(false),
                        _ => match line.parse::<i64>() {
                            Ok(v) => Value::Int(v),
                            Err(_) => return self.fail(format!("bad integer literal {line:?}")),
                        },
                    };
                    self.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Value::Float(v));
                }
                b'F' => {
                    let line = self.line()?;
                    let Ok(v) = line.parse::<f64>() else { return self.fail(format!("bad float literal {line:?}")) };
                    self.push(Value::Float(v));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as u64;
                    let n = self.len_u64(n)?;
                    let v = self.string(n)?;
                    self.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.len_u64(n)?;
                    let v = self.string(n)?;
                    self.push(v);
                }
                b'T' | b'U' => {
                    // Python 2 byte strings; torch writes none, but older metadata might.
                    let n = if op == b'T' { i32::from_le_bytes(self.le()?) as i64 } else { self.u8()? as i64 };
                    if n < 0 {
                        return self.fail("negative string length");
                    }
                    let bytes = self.take(n as usize)?;
                    self.push(Value::Str(String::from_utf8_lossy(bytes).into()));
                }
                b'V' => {
                    let line = self.line()?;
                    self.push(Value::Str(line.into()));
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => u32::from_le_bytes(self.le()?) as u64,
                        b'C' => self.u8()? as u64,
                        _ => u64::from_le_bytes(self.le()?),
                    };
                    let n = self.len_u64(n)?;
                    let bytes = self.take(n)?;
                    self.push(Value::Bytes(bytes.into()));
                }
                b')' => self.push(Value::Tuple(Rc::new([]))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items.into()));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items.into()));
                }
                b']' => self.push(Value::List(Rc::default())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'}' => self.push(Value::Dict(Rc::default())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Value::Dict(Rc::new(RefCell::new(pairs))));
                }
                0x8f => self.push(Value::Set(Rc::default())),
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::Set(Rc::new(RefCell::new(items))));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.set_items(pairs)?;
                }
                b'q' => {
                    let i = self.u8()? as u64;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.le()?) as u64;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?;
                }
                b'p' => {
                    let line = self.line()?;
                    let Ok(i) = line.parse::<u64>() else { return self.fail("bad PUT index") };
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u64;
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.le()?) as u64;
                    self.memo_get(i)?;
                }
                b'g' => {
                    let line = self.line()?;
                    let Ok(i) = line.parse::<u64>() else { return self.fail("bad GET index") };
                    self.memo_get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(format!("{module}.{name}").into()));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => self.push(Value::Global(format!("{m}.{n}").into())),
                        _ => return self.fail("STACK_GLOBAL needs two strings"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.call(callable, args)?;
                    self.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let v = self.call(class, args)?;
                    self.push(v);
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let v = self.call(class, args)?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    match self.top()? {
                        Value::Object(o) => o.borrow_mut().state = Some(state),
                        // OrderedDict metadata, tensor hooks: nothing we use.
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => {
                            let kind = other.kind();
                            return self.fail(format!("BUILD on {kind}"));
                        }
                    }
                }
                other => return self.fail(format!("unsupported opcode 0x{other:02x}")),
            }
        }
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
        if items.len() % 2 != 0 {
            return self.fail("odd number of items for a dict");
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(pairs)
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        match self.top()? {
            Value::List(l) | Value::Set(l) => l.borrow_mut().extend(items),
            Value::Object(o) => o.borrow_mut().args.extend(items),
            other => {
                let kind = other.kind();
                return self.fail(format!("APPEND to {kind}"));
            }
        }
        Ok(())
    }

    fn set_items(&mut self, pairs: Vec<(Value, Value)>) -> Result<(), PickleError> {
        match self.top()? {
            Value::Dict(d) => d.borrow_mut().extend(pairs),
            Value::Object(o) => o.borrow_mut().items.extend(pairs),
            other => {
                let kind = other.kind();
                return self.fail(format!("SETITEM on {kind}"));
            }
        }
        Ok(())
    }

    fn persistent_load(&self, pid: Value) -> Result<Value, PickleError> {
        let Value::Tuple(t) = &pid else { return self.fail(format!("persistent id is a {}", pid.kind())) };
        match &t[..] {
            [Value::Str(tag), Value::Global(class), Value::Str(key), _location, Value::Int(numel)]
                if &**tag == "storage" =>
            {
                let class_name = class.rsplit('.').next().unwrap_or_default();
                let Some(dtype) = StorageDtype::from_class(class_name) else {
                    return self.fail(format!("unsupported storage type {class}"));
                };
                let Ok(numel) = usize::try_from(*numel) else { return self.fail("negative storage size") };
                Ok(Value::Storage(Rc::new(StorageRef { key: key.to_string(), dtype, numel })))
            }
            _ => self.fail("persistent id is not a torch storage record"),
        }
    }

    /// Interprets the few callables torch checkpoints use; everything else stays inert data.
    fn call(&self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Global(name) = &callable else {
            return self.fail(format!("call of a {}, not a class or function", callable.kind()));
        };
        let args: Vec<Value> = match &args {
            Value::Tuple(t) => t.to_vec(),
            other => return self.fail(format!("call arguments are a {}, not a tuple", other.kind())),
        };
        match &**name {
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => self.rebuild_tensor(&args),
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => self.fail("_rebuild_parameter without a tensor"),
            },
            "collections.OrderedDict" => {
                let pairs = match args.first() {
                    None => Vec::new(),
                    Some(Value::List(items)) => {
                        let mut pairs = Vec::new();
                        for item in items.borrow().iter() {
                            match item {
                                Value::Tuple(kv) if kv.len() == 2 => pairs.push((kv[0].clone(), kv[1].clone())),
                                _ => return self.fail("OrderedDict item is not a pair"),
                            }
                        }
                        pairs
                    }
                    Some(other) => return self.fail(format!("OrderedDict from a {}", other.kind())),
                };
                Ok(Value::Dict(Rc::new(RefCell::new(pairs))))
            }
            _ => {
                Ok(Value::Object(Rc::new(RefCell::new(Object { class: name.to_string(), args, ..Object::default() }))))
            }
        }
    }

    fn rebuild_tensor(&self, args: &[Value]) -> Result<Value, PickleError> {
        let [Value::Storage(storage), Value::Int(offset), Value::Tuple(shape), Value::Tuple(stride), ..] = args else {
            return self.fail("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, …)");
        };
        let dims = |t: &[Value]| -> Result<Vec<usize>, PickleError> {
            t.iter()
                .map(|v| match v {
                    Value::Int(i) if *i >= 0 => Ok(*i as usize),
                    _ => self.fail("tensor size or stride is not a non-negative integer"),
                })
                .collect()
        };
        let (shape, stride) = (dims(shape)?, dims(stride)?);
        if shape.len() != stride.len() {
            return self.fail("tensor size and stride differ in length");
        }
        let Ok(offset) = usize::try_from(*offset) else { return self.fail("negative storage offset") };
        Ok(Value::Tensor(Rc::new(TensorRef { storage: storage.clone(), offset, shape, stride })))
    }
}

fn long_from_bytes(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
        buf[..bytes.len()].copy_from_slice(bytes);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(bytes.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps({'a': [1, 2.5, 'x'], 'b': (None, True)}, protocol=2)`, written out by hand.
    #[test]
    fn decodes_basic_containers() {
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'(', 0x8c, 1, b'a', b']', b'q', 1, b'(', b'K', 1];
        p.extend_from_slice(&[b'G']);
        p.extend_from_slice(&2.5f64.to_be_bytes());
        p.extend_from_slice(&[b'X', 1, 0, 0, 0, b'x', b'e', 0x8c, 1, b'b', b'N', 0x88, 0x86, b'u', b'.']);
        let v = unpickle(&p).unwrap();
        let Value::List(a) = &v.get("a").unwrap() else { panic!() };
        let a = a.borrow();
        assert!(matches!(a[0], Value::Int(1)));
        assert!(matches!(a[1], Value::Float(f) if f == 2.5));
        assert_eq!(a[2].as_str(), Some("x"));
        let Value::Tuple(b) = &v.get("b").unwrap() else { panic!() };
        assert!(matches!(b[..], [Value::None, Value::Bool(true)]));
    }

    #[test]
    fn memo_shares_containers() {
        // d = {}; [d, d] then d['k'] = 1 after memoising: both list entries see it.
        let p = [0x80, 2, b']', b'(', b'}', b'q', 7, b'h', 7, b'e', b'h', 7, 0x8c, 1, b'k', b'K', 1, b's', b'0', b'.'];
        let v = unpickle(&p).unwrap();
        let Value::List(l) = &v else { panic!() };
        for item in l.borrow().iter() {
            assert!(matches!(item.get("k"), Some(Value::Int(1))));
        }
    }

    #[test]
    fn globals_are_never_called() {
        // os.system('echo hi') as a pickle: GLOBAL, args, REDUCE. It must become inert data.
        let mut p = b"\x80\x02cos\nsystem\nq\x00X\x07\x00\x00\x00echo hi\x85R.".to_vec();
        let v = unpickle(&p).unwrap();
        let Value::Object(o) = &v else { panic!("expected an opaque object") };
        assert_eq!(o.borrow().class, "os.system");
        assert_eq!(o.borrow().args[0].as_str(), Some("echo hi"));
        p.truncate(p.len() - 1);
        assert!(unpickle(&p).is_err(), "no STOP is an error");
    }

    #[test]
    fn lying_lengths_are_errors_not_allocations() {
        for p in [
            &b"\x80\x02X\xff\xff\xff\xff"[..],
            &b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7f"[..],
            &b"\x80\x02\x8b\xff\xff\xff\x7f"[..],
            &b"\x80\x02h\x05."[..],
            &b"\x80\x02e."[..],
            &b"\x80\x02."[..],
            &b"\x80\x02\xff"[..],
            &b""[..],
        ] {
            assert!(unpickle(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn rebuilds_tensor_references() {
        let mut p = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nDoubleStorage\nX\x01\x00\x00\x003X\x03\x00\x00\x00cpuK\x06tQ".to_vec();
        p.extend_from_slice(b"K\x00K\x02K\x03\x86K\x03K\x01\x86\x89)tR.");
        let Value::Tensor(t) = &unpickle(&p).unwrap() else { panic!() };
        assert_eq!(t.storage.key, "3");
        assert_eq!(t.storage.dtype, StorageDtype::F64);
        assert_eq!(t.storage.numel, 6);
        assert_eq!((t.shape.clone(), t.stride.clone()), (vec![2, 3], vec![3, 1]));
    }

    #[test]
    fn deep_nesting_is_neither_walked_nor_dropped_by_recursion() {
        // A million TUPLE1s, then a million nested lists (MARK … LIST), each around the last.
        let mut p = vec![0x80, 2, b'N'];
        p.extend(std::iter::repeat_n(0x85, 1_000_000));
        p.push(b'.');
        assert!(matches!(unpickle(&p), Ok(Value::Tuple(_))));
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b'(', 1_000_000));
        p.push(b'N');
        p.extend(std::iter::repeat_n(b'l', 1_000_000));
        p.push(b'.');
        let v = unpickle(&p).unwrap();
        assert!(v.dict_items().is_none());
    }

    #[test]
    fn values_that_contain_themselves_are_refused() {
        // o = C(); BUILD o with o as its state.
        let p = b"\x80\x02cm\nC\n)\x81q\x00h\x00b.";
        assert!(unpickle(p).unwrap_err().message.contains("contains itself"));
        // l = []; l.append(l), inside a tuple.
        let p = b"\x80\x02]q\x00h\x00a\x85.";
        assert!(unpickle(p).is_err());
        // Shared but acyclic: [d, d] is fine.
        let p = b"\x80\x02](}q\x07h\x07e.";
        assert!(unpickle(p).is_ok());
    }

    #[test]
    fn a_repeated_key_keeps_the_last_value_as_python_does() {
        // {'w': 1, 'x': 2, 'w': 3} built with SETITEMS.
        let p = b"\x80\x02}(X\x01\x00\x00\x00wK\x01X\x01\x00\x00\x00xK\x02X\x01\x00\x00\x00wK\x03u.";
        let v = unpickle(p).unwrap();
        assert!(matches!(v.get("w"), Some(Value::Int(3))));
        let keys: Vec<_> = v.dict_items().unwrap().iter().map(|(k, _)| k.as_str().unwrap().to_owned()).collect();
        assert_eq!(keys, ["w", "x"]);
    }

    #[test]
    fn a_flood_of_values_is_refused() {
        let mut p = vec![0x80, 2, b']'];
        p.extend(std::iter::repeat_n(b'2', MAX_VALUES + 10));
        p.push(b'.');
        let err = unpickle(&p).unwrap_err();
        assert!(err.message.contains("more than"), "{err}");
    }

    #[test]
    fn long_integers() {
        assert!(matches!(long_from_bytes(&[0xff]), Value::Int(-1)));
        assert!(matches!(long_from_bytes(&[0x00, 0x01]), Value::Int(256)));
        assert!(matches!(long_from_bytes(&[0; 9]), Value::BigInt(_)));
    }
}
