// Loaded with --import in the armhf board only. The npm registry's newest armv7l Node 20 is 20.11.0;
// vitest's toolchain (vite 8, rolldown) imports util.styleText and util.parseEnv (Node 20.12) and
// calls process.getBuiltinModule (Node 20.16). The daemon itself needs none of them. A builtin's
// ESM exports are fixed when it is first loaded, so `import { styleText } from 'node:util'` is
// redirected (a module.register resolve hook) to a module that re-exports node:util plus stand-ins:
// styleText returns the text uncoloured (the board's reports are JSON), parseEnv reads KEY=VALUE
// lines (vite reads .env files with it; the project has none).
import { createRequire, register } from 'node:module';

const require = createRequire(import.meta.url);
if (typeof process.getBuiltinModule !== 'function') process.getBuiltinModule = (id) => require(id);

const standIns = {
  styleText: '(_format, text) => text',
  parseEnv: `(text) => Object.fromEntries(String(text).split(/\\r?\\n/)
      .map((l) => /^\\s*(?:export\\s+)?([\\w.-]+)\\s*=\\s*(.*?)\\s*$/.exec(l)).filter(Boolean)
      .map((m) => [m[1], m[2].replace(/^(['"\`])(.*)\\1$/, '$2')]))`,
};
const util = require('node:util');
const missing = Object.keys(standIns).filter((name) => typeof util[name] !== 'function');
if (missing.length > 0) {
  const shim = 'data:text/javascript,' + encodeURIComponent(
    "import * as u from 'node:util'; export * from 'node:util'; export default u.default;" +
      missing.map((name) => `export const ${name} = ${standIns[name]};`).join(''),
  );
  const hooks = 'data:text/javascript,' + encodeURIComponent(
    `export async function resolve(specifier, context, next) {
       if ((specifier === 'node:util' || specifier === 'util') && !(context.parentURL || '').startsWith('data:'))
         return { url: ${JSON.stringify(shim)}, shortCircuit: true };
       return next(specifier, context);
     }`,
  );
  register(hooks);
  for (const name of missing) util[name] = (0, eval)(standIns[name]); // CommonJS callers
}
