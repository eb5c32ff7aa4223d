// A fake host interface: every function call goes to
// globalThis.__cairnHost[<interface>][<function>], which the tests set.
const iface = new URL(import.meta.url).searchParams.get("interface");

export default new Proxy(
  {},
  {
    get(_target, fn) {
      return (...args) => {
        const impl = globalThis.__cairnHost?.[iface]?.[fn];
        if (typeof impl !== "function") throw new Error(`the test's host has no ${iface}.${String(fn)}`);
        return impl(...args);
      };
    },
  }
);
