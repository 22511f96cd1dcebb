import { allBackends } from '../backends/registry.js';
import { FLAGS, SERVICE_KEYS } from '../config/options.js';
import { DEFAULT_STATE_DIR } from '../config/validate.js';
import { COMMAND_HELP } from './commands.js';
import { supportedMasks } from '../masking/registry.js';

const WIDTH = 30;

function row(left: string, right: string): string {
  return left.length >= WIDTH - 2 ? `  ${left}\n${' '.repeat(WIDTH)}${right}` : `  ${left.padEnd(WIDTH - 2)}${right}`;
}

/** Generated from the flag table and the backends' option specs, so it cannot drift from the code. */
export function helpText(): string {
  const lines: string[] = [
    'Usage: jitsu [options] SERVICE...',
    '       jitsu --config FILE [options] [SERVICE...]',
    '       jitsu --demo',
    '       jitsu status|start NAME|stop NAME|reload [--state DIR]    jitsu check --config FILE',
    '',
    'Jitsu answers DNS for configured names and boots the service behind a name on its first query;',
    'other names are forwarded upstream. Idle services are stopped again.',
    '',
    'SERVICE is key=value,key=value,... (quote a value containing commas: cmdline="a,b").',
    '',
    'Options:',
  ];
  for (const f of FLAGS) {
    const names = (f.short ? `-${f.short}, ` : '    ') + `--${f.long}` + (f.metavar ? ` ${f.metavar}` : '');
    const shown = f.defaultText ?? f.default;
    lines.push(row(names, f.help + (shown !== undefined ? ` (default: ${shown})` : '')));
  }
  lines.push('', `Commands (talk to the daemon running with --state DIR, default ${DEFAULT_STATE_DIR}, through DIR/control.sock):`);
  for (const [usage, help] of COMMAND_HELP) lines.push(row(`jitsu ${usage}`, help));
  lines.push('', 'Signals: SIGHUP reloads the config file, SIGUSR1 reopens --log-file, SIGTERM/SIGINT stop (services too).');
  lines.push('', 'Service keys (every backend):');
  for (const k of SERVICE_KEYS) lines.push(row(k.key + (k.repeatable ? ' (repeatable)' : ''), k.help));
  for (const b of allBackends()) {
    lines.push('', `Backend ${b.name}: ${b.summary}`);
    lines.push(`  stop modes: ${b.capabilities.stopModes.join('|')}; masks: ${supportedMasks(b.capabilities.masking).join('|')} (default ${b.capabilities.defaultMask})`);
    if (b.options.length === 0) lines.push('  (no backend keys)');
    for (const o of b.options) {
      const tags = [o.required ? 'required' : '', o.repeatable ? 'repeatable' : ''].filter(Boolean).join(', ');
      lines.push(row(o.key + (tags ? ` (${tags})` : ''), o.description + (o.example ? ` e.g. ${o.key}=${o.example}` : '')));
    }
  }
  lines.push(
    '',
    'Examples:',
    '  jitsu -l 5353 -f 0.0.0.0 dns=www.example.test,ip=10.77.0.20,exec="node server.js",port=80',
    '  jitsu -x qemu --synjitsu jitsu0 dns=vm.example.test,ip=10.77.0.30,kernel=/var/cache/jitsu/guest/vmlinux-tiny,mask=handshake',
    '',
    'Exit status: 0 on clean shutdown, 2 for a bad option or key (one line naming it and the fix), 1 otherwise.',
  );
  return lines.join('\n') + '\n';
}
