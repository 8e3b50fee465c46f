// ort_serve.js -- ONNX Runtime (onnxruntime-node, CPU) timed like bench_refine --serve,
// driven by bench/bench_peers.py.
//
//   node bench/ort/ort_serve.js MODEL.onnx THREADS C
//
// Commands on stdin, one answer line each:
//   info      -> "onnxruntime-node VERSION, intra-op threads N"
//   run T N   -> "T median_ms min_ms": N session.run calls one after another on one
//                [T, C] float32 input (after one warm-up call)
'use strict';
const ort = require('onnxruntime-node');
const readline = require('readline');

async function main() {
  const [model, threads, C] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: Number(threads),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const inputs = new Map();
  const feed = (T) => {
    if (!inputs.has(T)) {
      const x = new Float32Array(T * Number(C));
      for (let i = 0; i < x.length; i++) x[i] = Math.random() * 2 - 1;
      inputs.set(T, { [session.inputNames[0]]: new ort.Tensor('float32', x, [T, Number(C)]) });
    }
    return inputs.get(T);
  };
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const w = line.trim().split(/\s+/);
    if (w[0] === 'info') {
      console.log(`onnxruntime-node ${ort.env.versions.node}, intra-op threads ${threads}`);
    } else if (w[0] === 'run') {
      const T = Number(w[1]), n = Number(w[2]);
      const f = feed(T);
      await session.run(f);
      const ts = [];
      for (let r = 0; r < n; r++) {
        const t = process.hrtime.bigint();
        await session.run(f);
        ts.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      ts.sort((a, b) => a - b);
      console.log(`${T} ${ts[Math.floor(n / 2)].toFixed(6)} ${ts[0].toFixed(6)}`);
    } else {
      console.error(`ort_serve: cannot read '${line}'`);
      process.exit(2);
    }
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
