// workerpool worker: registers the tasks as methods (called with `pool.exec(name, args)`).

import workerpool from 'workerpool';
import { inc, md5test, sum_primes, sumArray } from './tasks.mjs';

workerpool.worker({ inc, sum_primes, md5test, sumArray });
