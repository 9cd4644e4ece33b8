// test/migrate/exim-files.test.ts: Exim's own syntax as exim-files.ts reads it, one row per
// form: smarthost entries (ports by number and by name, the smtps default), listener
// entries with the daemon's ports, option lists, macros and main options.
import { describe, expect, it } from 'vitest';
import { listenEntries, optionList, parseEximSettings, smarthostEntry } from '../../src/migrate/exim-files.js';

describe('smarthostEntry', () => {
  it.each<[string, number, string | undefined]>([
    ['hub.example.org', 25, 'hub.example.org:25'],
    ['hub.example.org', 465, 'hub.example.org:465'], // protocol = smtps: its default port
    ['hub.example.org::587', 25, 'hub.example.org:587'],
    ['hub.example.org::465', 25, 'hub.example.org:465'],
    ['hub.example.org::smtps', 25, 'hub.example.org:465'],
    ['hub.example.org::submission', 25, 'hub.example.org:587'],
    ['[2001:db8::1]::587', 25, '[2001:db8::1]:587'],
    ['hub.example.org::nosuchport', 25, undefined],
    ['two words', 25, undefined],
  ])('%s (default port %d) -> %s', (entry, port, want) => {
    expect(smarthostEntry(entry, port)).toBe(want);
  });
});

describe('listenEntries', () => {
  it.each<[string, number[], string[] | undefined]>([
    ['127.0.0.1', [25, 587], ['127.0.0.1:25', '127.0.0.1:587']],
    ['::1', [25, 587], ['[::1]:25', '[::1]:587']],
    ['127.0.0.1.2525', [25], ['127.0.0.1:2525']], // Exim's address.port
    ['::1.2525', [25], ['[::1]:2525']],
    ['[::1]:2525', [25], ['[::1]:2525']],
    ['eth0', [25], undefined],
  ])('%s with ports %j -> %j', (addr, ports, want) => {
    expect(listenEntries(addr, ports)).toEqual(want);
  });
});

describe('optionList and parseEximSettings', () => {
  it('lists: ":" (with "::" a colon), or another separator after "<"', () => {
    expect(optionList('25 : 587')).toEqual(['25', '587']);
    expect(optionList('<; 127.0.0.1 ; ::1')).toEqual(['127.0.0.1', '::1']);
    expect(optionList('smtp : submission')).toEqual(['smtp', 'submission']);
  });
  it('macros, main options, bare booleans, continued lines; any other line kept whole', () => {
    const m = parseEximSettings('# comment\nMAIN_TLS_ENABLE = yes\nDAEMON_SMTP_PORTS = 25 : \\\n  587\ndisable_ipv6\nno_prdr_enable\n' +
      '.ifdef X\nMACRO == "quoted"\n.endif\ndomainlist my_list = a.example\n');
    expect([...m]).toEqual([
      ['MAIN_TLS_ENABLE', 'yes'], ['DAEMON_SMTP_PORTS', '25 : 587'], ['disable_ipv6', 'true'], ['prdr_enable', 'false'],
      ['MACRO', 'quoted'], ['domainlist my_list = a.example', ''],
    ]);
  });
});
