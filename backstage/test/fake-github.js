'use strict';
// A loopback stand-in for the few GitHub endpoints the scaffolder's GitHub actions and the
// catalog's GitHub URL reader call, over REAL git repositories on disk: blobs, trees and
// commits are made with git itself (hash-object, update-index/write-tree, commit-tree,
// update-ref) and pushes go through `git http-backend`, so what a test reads back with
// `git show` is what a real server would hold. Listens on 127.0.0.1 only; every request
// must carry the token.
//
//   const gh = await startFakeGithub({ root, token });   // root: where <owner>/<repo>.git live
//   gh.createRepo('platform', 'claims');                  // bare repo with one commit on main
//   gh.apiBaseUrl   e.g. http://127.0.0.1:PORT/api/v3
//   gh.pulls        pull requests opened: {owner, repo, number, head, base, title, body}
//   gh.repos        repositories created through the API: {owner, name, private}
//   gh.calls        "METHOD /path" of every request, in order
//   gh.git(owner, repo, ...args)   run git in a repository
//   await gh.close()

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const zlib = require('node:zlib');

const NAME = /^[A-Za-z0-9_.-]+$/;

function startFakeGithub({ root, token, htmlHost = 'git.example.com' }) {
  fs.mkdirSync(root, { recursive: true });
  const calls = [];
  const pulls = [];
  const repos = [];
  const protections = [];
  let port;

  const repoDir = (owner, repo) => {
    if (!NAME.test(owner) || !NAME.test(repo)) throw Object.assign(new Error('bad name'), { status: 400 });
    return path.join(root, owner, `${repo}.git`);
  };
  const git = (owner, repo, args, opts = {}) =>
    execFileSync('git', args, {
      cwd: repoDir(owner, repo),
      encoding: opts.encoding ?? 'utf8',
      input: opts.input,
      env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: root, ...opts.env },
    });
  const gitText = (owner, repo, args, opts) => git(owner, repo, args, opts).trim();
  const exists = (owner, repo) => fs.existsSync(repoDir(owner, repo));
  const refSha = (owner, repo, ref) => {
    try {
      return gitText(owner, repo, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
    } catch {
      return null;
    }
  };

  function initBare(owner, repo) {
    const dir = repoDir(owner, repo);
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', dir]);
    git(owner, repo, ['config', 'http.receivepack', 'true']);
  }

  /** A repository with one commit on main, as a team's claims repository would be. */
  function createRepo(owner, repo, files = { 'README.md': `${repo}\n` }) {
    initBare(owner, repo);
    const tree = writeTree(owner, repo, null, Object.entries(files).map(([p, content]) => ({ path: p, content })));
    const commit = gitText(owner, repo, ['commit-tree', tree, '-m', 'init'], { env: author('init') });
    git(owner, repo, ['update-ref', 'refs/heads/main', commit]);
    return commit;
  }

  function author(name, email = `${name}@example.com`) {
    return { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email };
  }

  /** A tree from a base tree and GitHub's tree entries (path, mode, sha|content|null). */
  function writeTree(owner, repo, baseTree, entries) {
    const index = path.join(root, `.index-${process.pid}-${Math.random().toString(16).slice(2)}`);
    const env = { GIT_INDEX_FILE: index };
    try {
      if (baseTree) git(owner, repo, ['read-tree', baseTree], { env });
      else git(owner, repo, ['read-tree', '--empty'], { env });
      for (const e of entries) {
        if (typeof e.path !== 'string' || e.path.startsWith('/') || e.path.split('/').includes('..')) {
          throw Object.assign(new Error(`bad path ${e.path}`), { status: 422 });
        }
        if (e.sha === null) {
          git(owner, repo, ['update-index', '--force-remove', '--', e.path], { env });
          continue;
        }
        const sha = e.sha ?? gitText(owner, repo, ['hash-object', '-w', '--stdin'], { input: e.content ?? '' });
        git(owner, repo, ['update-index', '--add', '--cacheinfo', `${e.mode ?? '100644'},${sha},${e.path}`], { env });
      }
      return gitText(owner, repo, ['write-tree'], { env });
    } finally {
      fs.rmSync(index, { force: true });
    }
  }

  const authorized = req => {
    const a = req.headers.authorization ?? '';
    if (a === `token ${token}` || a === `Bearer ${token}`) return true;
    if (a.startsWith('Basic ')) {
      const [, password] = Buffer.from(a.slice(6), 'base64').toString('utf8').split(':');
      return password === token;
    }
    return false;
  };

  const repoJson = (owner, repo) => ({
    id: 1,
    name: repo,
    full_name: `${owner}/${repo}`,
    owner: { login: owner, type: 'Organization' },
    private: true,
    default_branch: 'main',
    html_url: `https://${htmlHost}/${owner}/${repo}`,
    clone_url: `http://127.0.0.1:${port}/${owner}/${repo}.git`,
    permissions: { admin: true, maintain: true, push: true, triage: true, pull: true },
  });

  /** Smart HTTP through git's own CGI server. */
  function gitHttpBackend(req, res, body, pathInfo, query) {
    const env = {
      ...process.env,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: root,
      PATH_INFO: pathInfo,
      REQUEST_METHOD: req.method,
      QUERY_STRING: query,
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      CONTENT_LENGTH: String(body.length),
      REMOTE_USER: 'x-access-token',
      REMOTE_ADDR: '127.0.0.1',
      GIT_HTTP_MAX_REQUEST_BUFFER: '100M',
    };
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', c => out.push(c));
    child.stderr.on('data', c => err.push(c));
    child.on('close', code => {
      const buf = Buffer.concat(out);
      const split = buf.indexOf('\r\n\r\n') >= 0 ? buf.indexOf('\r\n\r\n') : buf.indexOf('\n\n');
      if (code !== 0 || split < 0) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`git http-backend failed: ${Buffer.concat(err).toString()}`);
        return;
      }
      const sep = buf[split] === 13 ? 4 : 2;
      const headers = {};
      let status = 200;
      for (const line of buf.subarray(0, split).toString('utf8').split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.end(buf.subarray(split + sep));
    });
    child.stdin.end(body);
  }

  async function handle(req, res, raw) {
    const url = new URL(req.url, 'http://127.0.0.1');
    const p = url.pathname;
    calls.push(`${req.method} ${p}`);
    const send = (status, obj, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(obj === undefined ? '' : JSON.stringify(obj));
    };
    if (!authorized(req)) {
      return send(401, { message: 'Requires authentication' }, { 'www-authenticate': 'Basic realm="fake-github"' });
    }
    let m;
    if ((m = /^\/([^/]+)\/([^/]+)\.git(\/.*)$/.exec(p))) {
      repoDir(m[1], m[2]);
      if (!exists(m[1], m[2])) return send(404, { message: 'Not Found' });
      return gitHttpBackend(req, res, raw, p, url.search.slice(1));
    }
    const body = raw.length ? JSON.parse(raw.toString('utf8')) : {};

    if (req.method === 'POST' && p === '/api/graphql') {
      // The pull-request plugin asks whether the head branch exists (and has a PR).
      const { owner, repo, head } = body.variables ?? {};
      const sha = owner && repo && exists(owner, repo) ? refSha(owner, repo, `refs/heads/${head}`) : null;
      const prs = pulls.filter(x => x.owner === owner && x.repo === repo && x.head === head);
      return send(200, {
        data: {
          repository: {
            ref: sha
              ? { associatedPullRequests: { edges: prs.map(x => ({ node: { state: 'OPEN', number: x.number } })) } }
              : null,
          },
        },
      });
    }
    const api = p.replace(/^\/api\/v3/, '');
    if (req.method === 'GET' && (m = /^\/users\/([^/]+)$/.exec(api))) {
      return send(200, { login: m[1], type: 'Organization' });
    }
    if (req.method === 'POST' && (m = /^\/orgs\/([^/]+)\/repos$/.exec(api))) {
      if (exists(m[1], body.name)) return send(422, { message: 'Repository creation failed: name already exists on this account' });
      initBare(m[1], body.name);
      repos.push({ owner: m[1], name: body.name, private: body.private, visibility: body.visibility });
      return send(201, repoJson(m[1], body.name));
    }
    if (!(m = /^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(api))) return send(404, { message: 'Not Found (fake github)' });
    const [, owner, repo, rest = ''] = m;
    if (!exists(owner, repo)) return send(404, { message: 'Not Found' });

    if (req.method === 'GET' && rest === '') return send(200, repoJson(owner, repo));
    if (req.method === 'GET' && rest === '/commits') {
      const sha = refSha(owner, repo, url.searchParams.get('sha') ?? 'main');
      if (!sha) return send(404, { message: 'No commit found' });
      const tree = gitText(owner, repo, ['rev-parse', `${sha}^{tree}`]);
      return send(200, [{ sha, commit: { tree: { sha: tree } } }]);
    }
    if (req.method === 'POST' && rest === '/git/blobs') {
      const content = Buffer.from(body.content ?? '', body.encoding === 'base64' ? 'base64' : 'utf8');
      return send(201, { sha: gitText(owner, repo, ['hash-object', '-w', '--stdin'], { input: content }) });
    }
    if (req.method === 'POST' && rest === '/git/trees') {
      return send(201, { sha: writeTree(owner, repo, body.base_tree, body.tree ?? []) });
    }
    if (req.method === 'POST' && rest === '/git/commits') {
      const a = body.author ?? { name: 'unknown', email: 'unknown@example.com' };
      const args = ['commit-tree', body.tree, ...(body.parents ?? []).flatMap(x => ['-p', x]), '-m', body.message ?? ''];
      return send(201, { sha: gitText(owner, repo, args, { env: author(a.name, a.email) }) });
    }
    if (req.method === 'POST' && rest === '/git/refs') {
      if (refSha(owner, repo, body.ref)) return send(422, { message: 'Reference already exists' });
      git(owner, repo, ['update-ref', body.ref, body.sha]);
      return send(201, { ref: body.ref, object: { sha: body.sha } });
    }
    if (req.method === 'PATCH' && (m = /^\/git\/refs\/(.+)$/.exec(rest))) {
      const ref = `refs/${m[1]}`;
      const old = refSha(owner, repo, ref);
      if (!old) return send(422, { message: 'Reference does not exist' });
      if (!body.force) {
        try {
          git(owner, repo, ['merge-base', '--is-ancestor', old, body.sha]);
        } catch {
          return send(422, { message: 'Update is not a fast forward' });
        }
      }
      git(owner, repo, ['update-ref', ref, body.sha]);
      return send(200, { ref, object: { sha: body.sha } });
    }
    if (req.method === 'GET' && (m = /^\/git\/ref\/(.+)$/.exec(rest))) {
      const sha = refSha(owner, repo, `refs/${m[1]}`);
      return sha ? send(200, { ref: `refs/${m[1]}`, object: { sha, type: 'commit' } }) : send(404, { message: 'Not Found' });
    }
    if (req.method === 'POST' && rest === '/pulls') {
      // head may be "owner:branch" (a branch of this repository's owner).
      const [headOwner, head] = String(body.head).includes(':') ? String(body.head).split(':') : [owner, body.head];
      if (headOwner !== owner) return send(422, { message: `head ${body.head}: forks are not supported here` });
      if (!refSha(owner, repo, `refs/heads/${head}`)) return send(422, { message: `head ${body.head} does not exist` });
      if (!refSha(owner, repo, `refs/heads/${body.base}`)) return send(422, { message: `base ${body.base} does not exist` });
      const number = pulls.length + 1;
      const pr = { owner, repo, number, head, base: body.base, title: body.title, body: body.body, draft: !!body.draft };
      pulls.push(pr);
      return send(201, {
        number,
        html_url: `https://${htmlHost}/${owner}/${repo}/pull/${number}`,
        head: { ref: head, sha: refSha(owner, repo, `refs/heads/${head}`) },
        base: { ref: body.base },
        title: body.title,
        body: body.body,
        state: 'open',
      });
    }
    if (req.method === 'PUT' && (m = /^\/branches\/([^/]+)\/protection$/.exec(rest))) {
      protections.push({ owner, repo, branch: m[1], settings: body });
      return send(200, { url: `${p}` });
    }
    if (req.method === 'GET' && (m = /^\/contents\/(.+)$/.exec(rest))) {
      // The catalog's URL reader: raw content at a ref.
      const ref = url.searchParams.get('ref') ?? 'main';
      const file = decodeURIComponent(m[1]);
      let content;
      try {
        content = git(owner, repo, ['show', `${ref}:${file}`], { encoding: 'buffer' });
      } catch {
        return send(404, { message: 'Not Found' });
      }
      const sha = gitText(owner, repo, ['rev-parse', `${ref}:${file}`]);
      if ((req.headers.accept ?? '').includes('raw')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', etag: `"${sha}"` });
        return res.end(content);
      }
      return send(200, { type: 'file', encoding: 'base64', content: content.toString('base64'), sha, path: file, name: path.basename(file) });
    }
    return send(404, { message: 'Not Found (fake github)' });
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') {
        raw = zlib.gunzipSync(raw);
        delete req.headers['content-encoding'];
      }
      Promise.resolve(handle(req, res, raw)).catch(e => {
        if (res.headersSent) return res.destroy();
        res.writeHead(e.status ?? 500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: String(e.message ?? e) }));
      });
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      port = server.address().port;
      resolve({
        port,
        apiBaseUrl: `http://127.0.0.1:${port}/api/v3`,
        calls,
        pulls,
        repos,
        protections,
        createRepo,
        git: (owner, repo, ...args) => gitText(owner, repo, args),
        close: () =>
          new Promise(r => {
            server.closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}

module.exports = { startFakeGithub };
