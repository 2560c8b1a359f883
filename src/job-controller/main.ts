// STUB (replaced by the job controller work): the job controller process.
// Contract with the watcher (its parent): send {type:'ready'} once serving, {type:'fatal', message}
// before exiting on a start-up error; on SIGTERM finish the work in hand and exit 0.
import { serveJsonSocket } from '../common/ipc-socket.js';
import { instancePaths, resolveRoot } from '../common/instance.js';

const paths = instancePaths(resolveRoot(undefined));
const server = await serveJsonSocket(paths.jobControllerSocket, () => ({ ok: true }));
process.send?.({ type: 'ready' });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
