//! `records.jsonl`, appended one flushed line per record as records are made; `-` writes to stdout
//! (what a container run uses: the harness reads the records from the container's output).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use chimeraforge_core::records::Record;
use chimeraforge_core::workflow::RecordSink;

pub struct FileSink {
    inner: Mutex<(Box<dyn Write + Send>, Option<std::io::Error>)>,
}

impl FileSink {
    /// Create `dir` if needed and open `dir/records.jsonl` for appending; `-` means stdout.
    pub fn open(dir: &Path) -> std::io::Result<FileSink> {
        let out: Box<dyn Write + Send> = if dir == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            std::fs::create_dir_all(dir)?;
            Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("records.jsonl"))?,
            )
        };
        Ok(FileSink {
            inner: Mutex::new((out, None)),
        })
    }

    /// The first write error, if any happened.
    pub fn take_error(&self) -> Option<std::io::Error> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .take()
    }
}

impl RecordSink for FileSink {
    fn emit(&self, record: &Record) {
        let mut line = record.to_line();
        line.push('\n');
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (file, error) = &mut *guard;
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            error.get_or_insert(e);
        }
    }
}
