// Gives Node a WebGPU implementation (Dawn, from the npm package 'webgpu') so
// Go's syscall/js tests under GOOS=js GOARCH=wasm see navigator.gpu as in a
// browser. Loaded with NODE_OPTIONS=--import=<abs path to this file>; the bare
// specifier resolves from web/node_modules because resolution starts here.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
// Node 21+ defines a read-only navigator; define the property instead of assigning.
Object.defineProperty(globalThis, 'navigator', {
  value: { gpu: create([]) },
  writable: true,
  configurable: true,
});
