// Runs a Python script on the MicroPython WebAssembly port (32-bit, like the boards). MIT licence.
//
//   node host_tests/wasm_run.mjs <script.py> [args...]
//
// The port has no access to the host's files, so every .py under stack/ and host_tests/ is
// copied into its in-memory filesystem at /repo/<same path>, and the script runs with /repo as
// the current directory and sys.path = [script dir, .frozen, /repo, /repo/host_tests, /lib]
// (the same order run_unix gives the unix port). The script's sys.exit(n) becomes our exit
// code; an uncaught exception prints its traceback and exits 1.
//
// Environment: WASM_HEAPSIZE sets the initial MicroPython heap in bytes (default 16 MiB).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const COPY_DIRS = ["stack", "host_tests"];
const WASM_ROOT = "/repo";

// Bare import: node looks for node_modules from host_tests/ upwards, i.e. the repo root's.
let loadMicroPython;
try {
  ({ loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript"));
} catch (err) {
  process.stderr.write(`wasm_run: cannot load the MicroPython WebAssembly port from ` +
    `${ROOT}/node_modules (run \`make node_modules\`): ${err.message}\n`);
  process.exit(2);
}

// The port calls stdout/stderr once per byte when linebuffer is off; batch them into lines,
// and keep a last line that has no newline (the port's own line buffer would drop it).
function byteSink(stream) {
  let bytes = [];
  const flush = () => {
    if (bytes.length) stream.write(Buffer.from(bytes));
    bytes = [];
  };
  const write = (chunk) => {
    for (const b of chunk) bytes.push(b);
    if (bytes.length >= 4096 || chunk[chunk.length - 1] === 10) flush();
  };
  return { write, flush };
}

// Every .py file below dir, as paths relative to ROOT.
function pyFiles(dir) {
  if (!fs.existsSync(path.join(ROOT, dir))) return [];
  const out = [];
  for (const ent of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, ent.name);
    if (ent.isDirectory() && ent.name !== "__pycache__") out.push(...pyFiles(rel));
    else if (ent.isFile() && ent.name.endsWith(".py")) out.push(rel);
  }
  return out;
}

function writeWasmFile(mp, wasmPath, data) {
  mp.FS.mkdirTree(path.posix.dirname(wasmPath));
  mp.FS.writeFile(wasmPath, data);
}

if (process.argv.length < 3) {
  process.stderr.write("usage: node host_tests/wasm_run.mjs <script.py> [args...]\n");
  process.exit(2);
}
const [script, ...args] = process.argv.slice(2);
const out = byteSink(process.stdout);
const err = byteSink(process.stderr);
const mp = await loadMicroPython({
  heapsize: Number(process.env.WASM_HEAPSIZE || 16 * 1024 * 1024),
  linebuffer: false,
  stdout: out.write,
  stderr: err.write,
});

for (const dir of COPY_DIRS) {
  for (const rel of pyFiles(dir)) {
    writeWasmFile(mp, `${WASM_ROOT}/${rel.split(path.sep).join("/")}`, fs.readFileSync(
      path.join(ROOT, rel)));
  }
}
// The script keeps its repo-relative path (tools/x.py -> /repo/tools/x.py); one from outside
// the repo (an ad-hoc test script in a temp dir) goes to /ext/<name>.
const absScript = path.resolve(script);
const relScript = path.relative(ROOT, absScript);
const wasmScript = relScript.startsWith("..") || path.isAbsolute(relScript)
  ? `/ext/${path.basename(absScript)}`
  : `${WASM_ROOT}/${relScript.split(path.sep).join("/")}`;
writeWasmFile(mp, wasmScript, fs.readFileSync(absScript));

// sys.argv starts empty in this port, __file__ is not set and SystemExit reaches JS only as a
// PythonError whose message is traceback text. So a small Python prologue sets the scene,
// runs the script with its own globals, and keeps the exit status in a global we read back.
// JSON string literals are valid Python string literals, hence JSON.stringify for quoting.
const q = (s) => JSON.stringify(s);
const wasmDir = path.posix.dirname(wasmScript);
const prologue = `
import os, sys
sys.argv.clear()
sys.argv.extend([${[wasmScript, ...args].map(q).join(", ")}])
sys.path.clear()
sys.path.extend([${[wasmDir, ".frozen", WASM_ROOT, `${WASM_ROOT}/host_tests`, "/lib"]
  .map(q).join(", ")}])
os.chdir(${q(WASM_ROOT)})
_wasm_rc = 0
try:
    with open(${q(wasmScript)}) as _f:
        _code = compile(_f.read(), ${q(wasmScript)}, "exec")
    exec(_code, {"__name__": "__main__", "__file__": ${q(wasmScript)}})
except SystemExit as _e:
    # As CPython: exit() and exit(None) mean 0, an int is the status, anything else is
    # printed to stderr and means 1.
    _c = _e.args[0] if _e.args else None
    if _c is None:
        _wasm_rc = 0
    elif isinstance(_c, int):
        _wasm_rc = _c
    else:
        print(_c, file=sys.stderr)
        _wasm_rc = 1
`;

let rc;
try {
  mp.runPython(prologue);
  rc = mp.globals.get("_wasm_rc");
} catch (e) {
  if (e.name !== "PythonError") throw e;
  // e.type is the exception class name; e.message is the whole formatted traceback.
  out.flush();
  process.stderr.write(e.message.endsWith("\n") ? e.message : e.message + "\n");
  rc = 1;
}
out.flush();
err.flush();
// Exit statuses are one byte; let pending writes drain rather than calling process.exit().
process.exitCode = rc & 0xff;
