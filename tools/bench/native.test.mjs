// Tests of the native section's parsing and report (native.mjs), without
// running any benchmark: node --test tools/bench/native.test.mjs
// (part of make test-bench-smoke).
import assert from 'node:assert/strict';
import path from 'node:path';
import test from 'node:test';
import { ROOT } from './lib.mjs';
import { parseGoBench, cliHasBackend, cliSummary, fileMeta, sampleFlags, browserSimd, nativeMarkdown, rows, smokeProblems, nativeMismatch } from './native.mjs';

const GO_OUT = `goos: linux
goarch: amd64
pkg: github.com/diffuse-web/diffuse/tools/bench/gobench
cpu: AMD EPYC
BenchmarkCPU/mnist/b1-2         	       3	  40000000 ns/op	         1.500 GFLOP/s
BenchmarkCPU/mnist/b16-2        	       3	 400000000 ns/op	         2.400 GFLOP/s
BenchmarkSIMD/mnist/b1-2        	       3	  50000000 ns/op	         1.200 GFLOP/s
    bench_test.go:90: no kernels
--- SKIP: BenchmarkSIMD/mnist/b16
BenchmarkNative/mnist/b1-2      	       3	  10000000 ns/op	         6.000 GFLOP/s
BenchmarkNative/mnist/b16-2     	       3	  80000000 ns/op	        12.00 GFLOP/s
BenchmarkNative/scoresde-mnist/b1-2	       3	   2000000 ns/op
PASS
ok  	github.com/diffuse-web/diffuse/tools/bench/gobench	12.3s
`;

test('parseGoBench reads every BenchmarkX/<model>/b<batch> line, whatever X', () => {
  const { procs, results } = parseGoBench(GO_OUT);
  assert.equal(procs, 2);
  assert.deepEqual(Object.keys(results).sort(), ['CPU', 'Native', 'SIMD']);
  assert.deepEqual(parseGoBench(GO_OUT).skipped, ['SIMD/mnist/b16']);
  assert.deepEqual(results.CPU.mnist['1'], { n: 3, ms: 40, gflops: 1.5 });
  assert.equal(results.CPU.mnist['16'].ms, 400);
  assert.equal(results.SIMD.mnist['16'], undefined); // skipped
  assert.equal(results.Native.mnist['16'].gflops, 12);
  assert.deepEqual(results.Native['scoresde-mnist']['1'], { n: 3, ms: 2, gflops: null });
});

test('parseGoBench: no -N suffix is GOMAXPROCS 1; junk and empty output give nothing', () => {
  assert.equal(parseGoBench('BenchmarkCPU/toy2d/b1 \t 5\t 1234 ns/op\n').procs, 1);
  assert.equal(parseGoBench('BenchmarkCPU/toy2d/b1 \t 5\t 1234 ns/op\n').results.CPU.toy2d['1'].ms, 0.001234);
  assert.deepEqual(parseGoBench('FAIL\nBenchmarkCPU 3 100 ns/op\nBenchmarkCPU/x/b1-2 --- FAIL\n'), { procs: null, results: {}, skipped: [] });
});

test('cliHasBackend looks for the flag in the usage', () => {
  assert.equal(cliHasBackend('flags:\n  -atol float\n    \trk45\n  -batch int\n'), false);
  assert.equal(cliHasBackend('flags:\n  -backend string\n    \tfast or reference (default "fast")\n'), true);
  assert.equal(cliHasBackend('  --backend fast|reference\n'), true);
  assert.equal(cliHasBackend('  -sampler string\n    \tcpu backend ...\n'), false);
});

test('cliSummary reads the sampling loop time and network calls', () => {
  assert.deepEqual(cliSummary('ddim 1-16/16 [====] 25/25\r\n16 samples with ddim: 25 network calls in 4.2s\n'), { loopS: 4.2, nfe: 25 });
  assert.deepEqual(cliSummary('diffuse sample: boom\n'), {});
});

test('sampleFlags: guided class for the class-conditional model only (shipped weights)', () => {
  assert.deepEqual(sampleFlags(fileMeta(path.join(ROOT, 'weights', 'mnist.safetensors'))), ['--class', '3', '--guidance', '2']);
  assert.deepEqual(sampleFlags(fileMeta(path.join(ROOT, 'weights', 'emoji.safetensors'))), []);
  assert.deepEqual(sampleFlags(fileMeta(path.join(ROOT, 'weights', 'toy2d.safetensors'))), []);
  assert.deepEqual(sampleFlags({ 'diffuse.config': '{"num_class_embeds": 10}' }), ['--class', '3']);
});

const BROWSER = {
  models: [
    { name: 'mnist', backends: {
      simd: { batches: { 1: { median: 30 }, 16: { median: 320 } }, sample: { ms: 9000, steps: 25, batch: 16 } },
      'simd-threads': { batches: { 1: { median: 20 } } },
    } },
    { name: 'emoji', backends: { simd: { batches: { 1: { median: 100 } }, sample: { ms: 60000, steps: 25, batch: 16 } }, 'simd-threads': { skipped: 'one thread' } } },
  ],
};

test('browserSimd prefers helper threads, falls back to one thread per figure', () => {
  const m = browserSimd(BROWSER, 'mnist');
  assert.deepEqual(m['1'], { ms: 20, backend: 'simd-threads' });
  assert.deepEqual(m['16'], { ms: 320, backend: 'simd' });
  assert.equal(m.sample.ms, 9000);
  assert.deepEqual(browserSimd(BROWSER, 'emoji')['1'], { ms: 100, backend: 'simd' });
  assert.deepEqual(browserSimd(null, 'mnist'), {});
});

function result(goText, extra = {}) {
  return {
    title: 't', date: '2026-12-07', go: 'go1.26',
    machine: { cpu: 'X', cores: 2, memGiB: 4, os: 'Linux', loadavg: [1, 1, 1] },
    config: { models: ['mnist', 'emoji'], batches: [1, 16], benchtime: '3x', sampleSteps: 25, sampleN: 16 },
    goBench: parseGoBench(goText),
    cli: { hasBackend: true, samples: { mnist: { guided: true, fast: { ms: 5000 }, reference: { ms: 20000 } }, emoji: { guided: false, fast: { ms: 15000 } } } },
    torch: { torch: '1.13', threads: 2, config: { iters: 3, warmup: 1 }, models: [
      { name: 'mnist', check: { ok: true, relRms: 3e-7 }, perCall: { 1: { median: 30 }, 16: { median: 160 } }, sample: { ms: 10000, finite: true } },
      { name: 'emoji', check: { ok: true, relRms: 1e-6 }, perCall: { 1: { median: 300 } }, sample: { ms: 30000, finite: true } },
    ] },
    browser: BROWSER,
    flops: { mnist: { 1: 60e6, 16: 960e6 } },
    ...extra,
  };
}

test('rows: ratios are the other time over ours, ours = Native when present', () => {
  const { rows: rs, oursBench, benches } = rows(result(GO_OUT));
  assert.equal(oursBench, 'Native');
  assert.deepEqual(benches, ['CPU', 'SIMD', 'Native']);
  const b1 = rs.find((r) => r.model === 'mnist' && r.what === 'b1 per call');
  assert.equal(b1.ours, 10);
  assert.equal(b1.reference, 40);
  assert.equal(b1.torch, 30);
  assert.ok(Math.abs(b1.torchGflops - 2) < 1e-12); // 60 MFLOP in 30 ms
  const smp = rs.find((r) => r.model === 'mnist' && r.sample);
  assert.equal(smp.ours, 5000);
  assert.equal(smp.browser, null); // guided: not the browser's unguided sample
  const emoji = rs.find((r) => r.model === 'emoji' && r.sample);
  assert.equal(emoji.browser.ms, 60000);
});

test('nativeMarkdown prints the ratios', () => {
  const md = nativeMarkdown(result(GO_OUT));
  const line = (what) => md.split('\n').find((l) => l.startsWith(`| mnist | ${what} |`));
  // b1: Native 10 ms; reference 40 → 4.00×, PyTorch 30 → 3.00×, browser threads 20 → 2.00×.
  assert.match(line('b1 per call'), /\| 4\.00× \| 3\.00× \| 2\.00× \|$/);
  // b16: reference 400/80, PyTorch 160/80, browser one thread 320/80 (marked ¹).
  assert.match(line('b16 per call'), /\| 5\.00× \| 2\.00× \| 4\.00×¹ \|$/);
  // The sample: CLI fast 5 s against reference 20 s and PyTorch 10 s; guided, so no browser ratio.
  assert.match(line('DDIM 25×16, guided'), /\| 4\.00× \| 2\.00× \| – \|$/);
  assert.match(md.split('\n').find((l) => l.startsWith('| emoji | DDIM 25×16 |')), /\| – \| 2\.00× \| 4\.00×¹ \|$/);
  assert.match(md, /Native vs PyTorch/);
  assert.doesNotMatch(md, /Busy machine/);
  const busy = result(GO_OUT);
  busy.machine.loadavg = [6, 4, 3];
  assert.match(nativeMarkdown(busy), /Busy machine.*load average up to 6\.0 on 2 cores/);
});

test('without BenchmarkNative, ours is the reference and no native-vs-reference ratio is made', () => {
  const go = GO_OUT.split('\n').filter((l) => !l.startsWith('BenchmarkNative')).join('\n');
  const r = result(go, { cli: { hasBackend: false, samples: { mnist: { guided: true, reference: { ms: 20000 } }, emoji: { reference: { ms: 40000 } } } } });
  const md = nativeMarkdown(r);
  assert.match(md, /no BenchmarkNative yet/);
  const b1 = md.split('\n').find((l) => l.startsWith('| mnist | b1 per call |'));
  assert.match(b1, /\| – \| 0\.75× \| 0\.50× \|$/); // PyTorch 30 / 40, browser 20 / 40
  assert.match(md.split('\n').find((l) => l.startsWith('| mnist | DDIM')), /\| – \| 0\.50× \| – \|$/);
  // A CLI with --backend but no BenchmarkNative: the fast sample still gets its column.
  const fast = nativeMarkdown(result(go));
  assert.match(fast, /\| Native \(fast\) \|/);
  assert.match(fast.split('\n').find((l) => l.startsWith('| mnist | DDIM')), /\| 20\.00 s \| – \| 5\.00 s \|/);
});

test('smokeProblems: fine on a whole run, names what is missing', () => {
  const ok = result(GO_OUT.replace('--- SKIP: BenchmarkSIMD/mnist/b16', 'BenchmarkSIMD/mnist/b16-2 3 60000000 ns/op'));
  ok.config.models = ['mnist'];
  assert.deepEqual(smokeProblems(ok), []);
  // A skipped sub-benchmark is not missing.
  const skip = result(GO_OUT);
  skip.config.models = ['mnist'];
  assert.deepEqual(smokeProblems(skip), []);
  const bad = result(GO_OUT.replace('--- SKIP: BenchmarkSIMD/mnist/b16', ''));
  bad.config.models = ['mnist'];
  bad.torch.models[0].check = { ok: false, relRms: 0.3 };
  bad.cli.samples.mnist = { guided: true, fast: { error: 'boom' } };
  const p = smokeProblems(bad).join('\n');
  assert.match(p, /BenchmarkSIMD b16 missing/);
  assert.match(p, /diffuse sample \(fast\): boom/);
  assert.match(p, /not timed/);
  assert.match(p, /PyTorch vs diffuse eval/);
  assert.deepEqual(nativeMismatch(bad), ['mnist: PyTorch and diffuse eval disagree (relative RMS 0.3)']);
  assert.match(smokeProblems(result(''))[0], /no results/);
  // PyTorch missing is a note, not a failure.
  const skipped = result(GO_OUT.replace('--- SKIP: BenchmarkSIMD/mnist/b16', 'BenchmarkSIMD/mnist/b16-2 3 60000000 ns/op'), { torch: { skipped: 'PyTorch not installed' } });
  skipped.config.models = ['mnist'];
  assert.deepEqual(smokeProblems(skipped), []);
});
