/** Finding and ending the lab's processes (by recorded pid and by namespace): @l4fleet/process. */
export { killAll, namespacePids, signal } from '@l4fleet/process';
