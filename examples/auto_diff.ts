// File: auto_diff.ts
// A TypeScript port of Parallel Python's auto_diff.py (author: Vitalii Vanovschi).
// Desc: This program demonstrates parallel computations with pp-node
// using class methods as parallel functions.
// Program calculates the partial sums of f(x) = x-x**2/2+x**3/3-x**4/4+...
// and first derivatives f'(x) using automatic differentiation technique.
// In the limit f(x) = ln(x+1) and f'(x) = 1/(x+1).

import { Server } from 'pp-node';

// Partial implementation of automatic differentiation class.
// TypeScript has no operator overloading, so Python's __add__, __sub__,
// __mul__, __truediv__ and __pow__ become the methods add, sub, mul, div and pow.
class AD {
  x: number;
  dx: number;

  constructor(x: number, dx = 0.0) {
    this.x = x;
    this.dx = dx;
  }

  pow(val: number): AD {
    if (Number.isInteger(val)) {
      return new AD(this.x ** val, val * this.x ** (val - 1) * this.dx);
    }
    throw new TypeError('Second argument must be an integer');
  }

  add(val: AD | number): AD {
    if (val instanceof AD) {
      return new AD(this.x + val.x, this.dx + val.dx);
    }
    return new AD(this.x + val, this.dx);
  }

  mul(val: AD | number): AD {
    if (val instanceof AD) {
      return new AD(this.x * val.x, this.x * val.dx + val.x * this.dx);
    }
    return new AD(this.x * val, val * this.dx);
  }

  div(val: AD | number): AD {
    if (val instanceof AD) {
      return this.mul(new AD(1 / val.x, -val.dx / val.x ** 2));
    }
    return this.mul(1 / val);
  }

  sub(val: AD | number): AD {
    if (val instanceof AD) {
      return new AD(this.x - val.x, this.dx - val.dx);
    }
    return new AD(this.x - val, this.dx);
  }

  toString(): string {
    return `(${this.x}, ${this.dx})`;
  }
}

/** This class contains methods which will be executed in parallel */
class PartialSum {
  n: number;

  constructor(n: number) {
    this.n = n;
  }

  /** truncated natural logarithm */
  t_log(x: AD): AD {
    return this.partial_sum(x.sub(1));
  }

  /** partial sum for truncated natural logarithm */
  partial_sum(x: AD): AD {
    let sum = new AD(0);
    for (let i = 1; i < this.n; i++) {
      sum = sum.add(
        x
          .pow(i)
          .mul(i % 2 ? 1 : -1)
          .div(i),
      );
    }
    return sum;
  }
}

/** Formats a number like C's %lf */
function lf(value: number): string {
  return value.toFixed(6);
}

console.log(`Usage: npx tsx examples/auto_diff.ts [ncpus]
    [ncpus] - the number of workers to run in parallel,
    if omitted it will be set to the number of processors in the system
`);

// list of all parallel python servers to connect with
// const ppservers = ['*']; // auto-discover
// const ppservers = ['10.0.0.1', '10.0.0.2']; // list of static IPs
const ppservers: string[] = [];

let server: Server;
if (process.argv.length > 2) {
  const ncpus = Number.parseInt(process.argv[2]!, 10);
  // Creates jobserver with ncpus workers
  server = new Server({ ncpus, ppservers });
} else {
  // Creates jobserver with automatically detected number of workers
  server = new Server({ ppservers });
}

console.log(`Starting pp with ${server.getNcpus()} workers`);

const proc = new PartialSum(20000);

const results = [];
for (let i = 0; i < 32; i++) {
  // Creates an object with x = i/32+1 and dx = 1.0
  const adX = new AD(i / 32 + 1, 1.0);
  // Submits a job of calculating proc.t_log(x).
  // [proc, 't_log'] - the method form: proc travels as `this`, and its class
  // PartialSum is shipped automatically; t_log depends on the class AD
  // <[AD], AD> - the argument and result types (the result comes back as an AD)
  const f = server.submit<[AD], AD>([proc, 't_log'], [adX], { deps: [AD] });
  results.push([adX.x, f] as const);
}

for (const [x, f] of results) {
  // Retrieves the result of the calculation
  const val: AD = await f;
  console.log(`t_log(${lf(x)}) = ${lf(val.x)}, t_log'(${lf(x)}) = ${lf(val.dx)}`);
}

// Print execution statistics
server.printStats();

await server.close();
