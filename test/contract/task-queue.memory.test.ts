import { MemoryTaskQueue } from '../../src/adapters/memory/task-queue.js';
import { taskQueueContract } from './task-queue.contract.js';

// One process holds the queue: a "second client" is a second handle on the same instance,
// and losing everything is a restart, i.e. a new instance.
taskQueueContract('MemoryTaskQueue', async () => {
  const queue = new MemoryTaskQueue();
  return {
    queue,
    connectAnother: async () => queue,
    loseEverything: async () => new MemoryTaskQueue(),
    close: async () => undefined,
  };
});
