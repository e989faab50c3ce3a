'use strict';
// backstage/install, hermetically: the script runs in a temporary checkout with a stand-in
// `npm` on PATH (it records its calls; `npm ci` makes a tiny tree with a better-sqlite3
// stub), so what is checked is the script's own logic: which npm it accepts, how it calls
// npm ci, what its cache key covers, and that the shared store never shares a file with a
// checkout. And the install-script policy itself: every dependency of the lockfile with an
// install script is named in package.json's allowScripts, under strict-allow-scripts.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { ROOT } = require('./support');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paved-install-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const FAKE_NPM = `#!/usr/bin/env bash
# A stand-in for npm: records each call (and the environment npm ci gets) in $FAKE_NPM_LOG.
printf '%s|build_from_source=%s|cache=%s\\n' "$*" "\${npm_config_build_from_source:-}" "\${npm_config_cache:-}" >> "$FAKE_NPM_LOG"
case "$1" in
  --version) echo "$FAKE_NPM_VERSION" ;;
  install-scripts) [[ -n "\${FAKE_NPM_NO_POLICY:-}" ]] && { echo 'Unknown command: "install-scripts"' >&2; exit 1; }; exit 0 ;;
  ci)
    mkdir -p node_modules/better-sqlite3 node_modules/@paved
    echo 'module.exports = class { prepare() { return { get: () => 1 }; } };' > node_modules/better-sqlite3/index.js
    echo '{"name":"better-sqlite3","main":"index.js"}' > node_modules/better-sqlite3/package.json
    echo "$FAKE_NPM_VERSION" > node_modules/made-by-npm
    ;;
  *) echo "fake npm: unexpected $*" >&2; exit 97 ;;
esac
`;

function checkout(name) {
  const dir = path.join(tmp, name, 'backstage');
  fs.mkdirSync(path.join(dir, 'plugins', 'catalog-backend-module-paved'), { recursive: true });
  for (const f of ['install', '.npmrc', 'package.json', 'package-lock.json', 'plugins/catalog-backend-module-paved/package.json']) {
    fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  }
  fs.chmodSync(path.join(dir, 'install'), 0o755);
  return dir;
}

const bin = path.join(tmp, 'bin');
fs.mkdirSync(bin);
fs.writeFileSync(path.join(bin, 'npm'), FAKE_NPM, { mode: 0o755 });
const cache = path.join(tmp, 'cache');
const npmLog = path.join(tmp, 'npm.log');

function install(dir, { version = '11.19.1', env = {} } = {}) {
  const r = spawnSync(path.join(dir, 'install'), [], {
    cwd: tmp,
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, PAVED_CACHE: cache, FAKE_NPM_LOG: npmLog, FAKE_NPM_VERSION: version, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const ciCalls = () => (fs.existsSync(npmLog) ? fs.readFileSync(npmLog, 'utf8').split('\n').filter(l => l.startsWith('ci ')) : []);
const trees = () => fs.readdirSync(path.join(cache, 'backstage-modules')).filter(n => !n.startsWith('.'));

test('every dependency with an install script is reviewed: only better-sqlite3 runs, strictly', () => {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
  const withScripts = [
    ...new Set(
      Object.entries(lock.packages)
        .filter(([, p]) => p.hasInstallScript)
        .map(([where]) => where.split('node_modules/').pop()),
    ),
  ].sort();
  const { allowScripts } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.deepEqual(Object.keys(allowScripts).sort(), withScripts, 'allowScripts must name exactly the lockfile packages with install scripts');
  assert.deepEqual(
    Object.entries(allowScripts).filter(([, v]) => v !== false),
    [['better-sqlite3', true]],
  );
  assert.match(fs.readFileSync(path.join(ROOT, '.npmrc'), 'utf8'), /^strict-allow-scripts=true$/m);
});

test('npm older than 11, or without an install-script policy, is refused before anything changes', () => {
  const dir = checkout('old-npm');
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.writeFileSync(path.join(dir, 'node_modules', 'keep'), 'x');
  const old = install(dir, { version: '10.9.2' });
  assert.equal(old.status, 1, old.stderr);
  assert.match(old.stderr, /error: npm 10\.9\.2 is too old: npm 11 or newer is needed/);
  const noPolicy = install(dir, { version: '11.0.0', env: { FAKE_NPM_NO_POLICY: '1' } });
  assert.equal(noPolicy.status, 1, noPolicy.stderr);
  assert.match(noPolicy.stderr, /error: npm 11\.0\.0 has no install-script policy/);
  assert.ok(fs.existsSync(path.join(dir, 'node_modules', 'keep')), 'node_modules untouched');
  assert.deepEqual(ciCalls(), []);
});

test('npm ci builds from source; the store is copied, never hard-linked, keyed by every input, locked', () => {
  const a = checkout('a');
  const first = install(a);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stdout, '');
  assert.equal(ciCalls().length, 1);
  assert.match(ciCalls()[0], /^ci --no-audit --no-fund --loglevel=error\|build_from_source=true\|cache=.*\/cache\/npm$/);
  assert.deepEqual(trees().length, 1);
  const stored = path.join(cache, 'backstage-modules', trees()[0], 'node_modules', 'better-sqlite3', 'index.js');
  const local = path.join(a, 'node_modules', 'better-sqlite3', 'index.js');
  assert.equal(fs.statSync(local).nlink, 1, 'the checkout shares no file with the store');
  assert.notEqual(fs.statSync(local).ino, fs.statSync(stored).ino);
  assert.ok(fs.existsSync(path.join(cache, 'backstage-modules', '.lock')));
  assert.equal(fs.readlinkSync(path.join(a, 'node_modules', '@paved', 'backstage-plugin-catalog-backend-module-paved')), '../../plugins/catalog-backend-module-paved');

  // Same inputs: nothing to do; a second checkout reuses the stored tree, as a copy.
  assert.equal(install(a).status, 0);
  const b = checkout('b');
  const reuse = install(b);
  assert.equal(reuse.status, 0, reuse.stderr);
  assert.match(reuse.stderr, /reusing the installed tree/);
  assert.equal(ciCalls().length, 1);
  assert.equal(fs.statSync(path.join(b, 'node_modules', 'better-sqlite3', 'index.js')).nlink, 1);
  // A write in a checkout stays there.
  fs.writeFileSync(path.join(b, 'node_modules', 'better-sqlite3', 'index.js'), 'tampered');
  assert.notEqual(fs.readFileSync(stored, 'utf8'), 'tampered');

  // Each input is part of the key: a change means a fresh npm ci.
  let calls = 1;
  const changes = [
    ['npm --version', () => ({ version: '11.20.0' })],
    ['.npmrc', () => fs.appendFileSync(path.join(b, '.npmrc'), '# changed\n')],
    ['package.json', () => fs.appendFileSync(path.join(b, 'package.json'), '\n')],
    ['the workspace package.json', () => fs.appendFileSync(path.join(b, 'plugins/catalog-backend-module-paved/package.json'), '\n')],
    ['the install script', () => fs.appendFileSync(path.join(b, 'install'), '\n# changed\n')],
  ];
  let version = '11.19.1';
  for (const [what, change] of changes) {
    version = change()?.version ?? version;
    const r = install(b, { version });
    assert.equal(r.status, 0, `${what}: ${r.stderr}`);
    calls += 1;
    assert.equal(ciCalls().length, calls, `a change of ${what} must change the key`);
  }
  // Three trees are kept.
  assert.equal(trees().length, 3);
});

test('half-made trees older than an hour are removed, newer ones kept', () => {
  const store = path.join(cache, 'backstage-modules');
  fs.mkdirSync(path.join(store, '.tmp-old-1', 'node_modules'), { recursive: true });
  fs.mkdirSync(path.join(store, '.tmp-new-1'), { recursive: true });
  const hoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
  fs.utimesSync(path.join(store, '.tmp-old-1'), hoursAgo, hoursAgo);
  const c = checkout('c');
  const r = install(c, { version: '11.30.0' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!fs.existsSync(path.join(store, '.tmp-old-1')));
  assert.ok(fs.existsSync(path.join(store, '.tmp-new-1')));
});
