// Server-to-client requests reach a legacy-era client (TypeScript SDK v1 1.32.2) through the gateway:
//  - from the legacy `everything` upstream, its real sampling/createMessage and elicitation/create requests;
//  - from the modern upstream, whose input_required results the gateway turns into real requests to
//    this client, then retries upstream with the client's answers.
// Each handler checks it saw the upstream's own question; each tool result must carry the handler's answer.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { textOf } from './common/topology.mjs';
import { closeQuietly, connectV1, guard, useTopology } from './common/harness.mjs';

describe('TS SDK v1 sampling and elicitation round trips through the gateway', { timeout: 90000 }, () => {
  const ref = useTopology();

  it('everything__trigger-sampling-request: the upstream sampling request reaches the client', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const answer = `sampled-${randomUUID()}`;
    const seen = [];
    const { client, transport } = await connectV1(topo.url, {
      onSample: (params) => { seen.push(params); return { model: 'fake-llm-v1', role: 'assistant', stopReason: 'endTurn', content: { type: 'text', text: answer } }; },
    });
    try {
      const r = await client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'tell me a joke', maxTokens: 21 } });
      assert.equal(seen.length, 1, 'exactly one sampling request');
      assert.equal(seen[0].messages.at(-1).content.text, 'Resource trigger-sampling-request context: tell me a joke');
      assert.equal(seen[0].systemPrompt, 'You are a helpful test server.');
      assert.equal(seen[0].maxTokens, 21);
      assert.notEqual(r.isError, true, JSON.stringify(r));
      const text = textOf(r);
      assert.match(text, /^LLM sampling result:/);
      assert.ok(text.includes(answer), `tool result should carry the client's answer: ${text}`);
      assert.ok(text.includes('fake-llm-v1'), text);
    } finally { await closeQuietly(client, transport); }
  }));

  for (const [action, expect] of [['accept', /✅ User provided the requested information!/], ['decline', /❌/]]) {
    it(`everything__trigger-elicitation-request: the upstream form elicitation reaches the client (${action})`, { timeout: 20000 }, guard(ref, async (_t, topo) => {
      const name = `Ada-${randomUUID().slice(0, 8)}`;
      const seen = [];
      const { client, transport } = await connectV1(topo.url, {
        onElicit: (params) => { seen.push(params); return action === 'accept' ? { action, content: { name, check: true } } : { action }; },
      });
      try {
        const r = await client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
        assert.equal(seen.length, 1, 'exactly one elicitation request');
        assert.equal(seen[0].message, 'Please provide inputs for the following fields:');
        assert.equal(seen[0].requestedSchema.type, 'object');
        assert.ok(seen[0].requestedSchema.properties.name, JSON.stringify(seen[0].requestedSchema));
        assert.deepEqual(seen[0].requestedSchema.required, ['name']);
        const text = textOf(r);
        assert.match(text, expect);
        if (action === 'accept') assert.ok(text.includes(`Name: ${name}`), `tool result should carry the client's answer: ${text}`);
        assert.ok(text.includes(`"action": "${action}"`), text);
      } finally { await closeQuietly(client, transport); }
    }));
  }

  it('modern__delete_thing: input_required (elicitation) is bridged into a real request to the legacy client', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const note = `note-${randomUUID().slice(0, 8)}`;
    const seen = [];
    const { client, transport } = await connectV1(topo.url, {
      onElicit: (params) => { seen.push(params); return { action: 'accept', content: { confirm: true, note } }; },
    });
    try {
      const r = await client.callTool({ name: 'modern__delete_thing', arguments: { thing: 'the-database' } });
      assert.equal(seen.length, 1, `exactly one elicitation request, got ${JSON.stringify(seen)}`);
      assert.equal(seen[0].message, 'Really delete the-database?');
      assert.ok(seen[0].requestedSchema?.properties?.confirm, JSON.stringify(seen[0].requestedSchema));
      assert.notEqual(r.isError, true, JSON.stringify(r));
      assert.equal(textOf(r), `deleted=True note='${note}' thing=the-database`);
    } finally { await closeQuietly(client, transport); }
  }));

  it('modern__delete_thing: a declined elicitation reaches the modern upstream as declined', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const { client, transport } = await connectV1(topo.url, { onElicit: () => ({ action: 'decline' }) });
    try {
      const r = await client.callTool({ name: 'modern__delete_thing', arguments: { thing: 'x' } });
      assert.equal(textOf(r), 'not deleted (decline)');
    } finally { await closeQuietly(client, transport); }
  }));

  it('modern__haiku: input_required (sampling) is bridged into a real sampling request to the legacy client', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const poem = `old pond ${randomUUID().slice(0, 8)} / a frog jumps in / splash`;
    const seen = [];
    const { client, transport } = await connectV1(topo.url, {
      onSample: (params) => { seen.push(params); return { model: 'haiku-llm', role: 'assistant', content: { type: 'text', text: poem } }; },
    });
    try {
      const r = await client.callTool({ name: 'modern__haiku', arguments: { topic: 'gateways' } });
      assert.equal(seen.length, 1, `exactly one sampling request, got ${JSON.stringify(seen)}`);
      assert.equal(seen[0].messages.length, 1);
      assert.equal(seen[0].messages[0].role, 'user');
      assert.equal(seen[0].messages[0].content.text, 'Write a haiku about gateways');
      assert.equal(seen[0].maxTokens, 64);
      assert.notEqual(r.isError, true, JSON.stringify(r));
      assert.equal(textOf(r), `[haiku-llm] ${poem}`);
    } finally { await closeQuietly(client, transport); }
  }));
  it('a client whose handlers fail gets a prompt error for every bridged or relayed request (no hang)', { timeout: 30000 }, guard(ref, async (_t, topo) => {
    const { client, transport } = await connectV1(topo.url, {
      onElicit: () => { throw new Error('user closed the dialog'); },
      onSample: () => { throw new Error('no llm available'); },
    });
    try {
      for (const [name, args, why] of [
        ['modern__delete_thing', { thing: 'x' }, 'user closed the dialog'],
        ['modern__haiku', { topic: 'y' }, 'no llm available'],
        ['everything__trigger-elicitation-request', {}, 'user closed the dialog'],
        ['everything__trigger-sampling-request', { prompt: 'p' }, 'no llm available'],
      ]) {
        let outcome;
        try {
          const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 8000 });
          outcome = { isError: r.isError === true, text: textOf(r) };
        } catch (e) {
          assert.notEqual(e.code, -32001, `${name}: timed out instead of failing promptly`);
          outcome = { isError: true, text: e.message };
        }
        assert.ok(outcome.isError, `${name}: expected an error, got ${JSON.stringify(outcome)}`);
        assert.ok(outcome.text.includes(why), `${name}: the client's error should be reported: ${outcome.text}`);
      }
    } finally { await closeQuietly(client, transport); }
  }));
});
