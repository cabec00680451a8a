//! A minimal blocking RESP2 client for the operator tool (commands out, one reply in).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    pub fn as_text(&self) -> String {
        match self {
            Value::Simple(s) | Value::Error(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Value::Bulk(None) | Value::Array(None) => String::new(),
            Value::Array(Some(v)) => v.iter().map(|x| x.as_text()).collect::<Vec<_>>().join("\n"),
        }
    }
}

pub struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

/// Upper bound on one bulk reply this tool accepts (CLUSTER NODES of a big cluster fits).
const MAX_BULK_BYTES: usize = 64 << 20;

impl Conn {
    pub fn connect(host: &str, port: u16) -> std::io::Result<Conn> {
        let addr = format!("{host}:{port}");
        let sa = addr
            .parse()
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad address"))?;
        let s = TcpStream::connect_timeout(&sa, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            w: s.try_clone()?,
            r: BufReader::new(s),
        })
    }

    pub fn call(&mut self, args: &[&str]) -> std::io::Result<Value> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf)?;
        self.read()
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut l = String::new();
        if self.r.read_line(&mut l)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(l.trim_end_matches(['\r', '\n']).to_string())
    }

    fn read(&mut self) -> std::io::Result<Value> {
        let l = self.line()?;
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad reply");
        let (t, rest) = l.split_at(l.len().min(1));
        Ok(match t {
            "+" => Value::Simple(rest.into()),
            "-" => Value::Error(rest.into()),
            ":" => Value::Int(rest.parse().map_err(|_| bad())?),
            "$" | "=" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Value::Bulk(None)
                } else {
                    let n = n as usize;
                    if n > MAX_BULK_BYTES {
                        return Err(bad());
                    }
                    let mut b = vec![0u8; n + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(n);
                    if t == "=" && b.len() >= 4 {
                        b.drain(..4);
                    }
                    Value::Bulk(Some(b))
                }
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Value::Array(None)
                } else {
                    let mut v = Vec::with_capacity((n as usize).min(1024));
                    for _ in 0..n {
                        v.push(self.read()?);
                    }
                    Value::Array(Some(v))
                }
            }
            _ => return Err(bad()),
        })
    }
}
