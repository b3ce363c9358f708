// SPDX-License-Identifier: GPL-2.0
/*
 * pageblocktypes: /proc/pageblocktypes lists the migratetype of every pageblock of every online
 * memory section, as get_pfnblock_flags_mask() reads it: one line per pageblock,
 *
 *     <first pfn> <node> <zone name> <migratetype name> <PB_migrate_skip>
 *
 * after a header line "# pageblock_order N section_pfns N". The migratetype names are those of
 * /proc/pagetypeinfo (migratetype_names[] in mm/page_alloc.c). The fields have fixed widths, so
 * two reads of the same memory are the same length whatever the types (the capture's snapshot
 * program reads each file twice into one buffer).
 *
 * The bitmap is read the way mm/page_alloc.c does for SPARSEMEM (get_pageblock_bitmap() and
 * pfn_to_bitidx()): the section's usage->pageblock_flags, NR_PAGEBLOCK_BITS bits per pageblock.
 * Only the exported mem_section and the inline helpers of <linux/mmzone.h> are used, so the
 * module builds against a distribution's headers package. buddyfarm's `farm capture` builds it
 * at capture time and reads the file at each snapshot.
 */
#include <linux/module.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/pageblock-flags.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/version.h>

#ifndef CONFIG_SPARSEMEM
#error "pageblocktypes reads the SPARSEMEM section bitmaps"
#endif

static const char *const names[MIGRATE_TYPES] = {
	[MIGRATE_UNMOVABLE] = "Unmovable",
	[MIGRATE_MOVABLE] = "Movable",
	[MIGRATE_RECLAIMABLE] = "Reclaimable",
	[MIGRATE_HIGHATOMIC] = "HighAtomic",
#ifdef CONFIG_CMA
	[MIGRATE_CMA] = "CMA",
#endif
#ifdef CONFIG_MEMORY_ISOLATION
	[MIGRATE_ISOLATE] = "Isolate",
#endif
};

static unsigned long block_flags(struct mem_section *ms, unsigned long pfn)
{
	unsigned long *bitmap = section_to_usemap(ms);
	unsigned long bitidx = ((pfn & (PAGES_PER_SECTION - 1)) >> pageblock_order) * NR_PAGEBLOCK_BITS;
	unsigned long word = READ_ONCE(bitmap[BIT_WORD(bitidx)]);

	return word >> (bitidx & (BITS_PER_LONG - 1));
}

static int show(struct seq_file *m, void *v)
{
	unsigned long nr, pfn, flags, mt;

	seq_printf(m, "# pageblock_order %u section_pfns %lu\n", (unsigned int)pageblock_order,
		   (unsigned long)PAGES_PER_SECTION);
	for (nr = 0; nr < NR_MEM_SECTIONS; nr++) {
		struct mem_section *ms;

		if (!(nr & SECTION_ROOT_MASK) && !__nr_to_section(nr)) {
			nr += SECTIONS_PER_ROOT - 1;	/* no root: a whole root of absent sections */
			continue;
		}
		ms = __nr_to_section(nr);
		if (!valid_section(ms) || !online_section(ms) || !ms->usage)
			continue;
		for (pfn = section_nr_to_pfn(nr); pfn < section_nr_to_pfn(nr + 1); pfn += pageblock_nr_pages) {
			struct page *page = pfn_to_page(pfn);

			flags = block_flags(ms, pfn);
			mt = flags & MIGRATETYPE_MASK;
			seq_printf(m, "%12lu %4d %-8s %-11s %lu\n", pfn, page_to_nid(page), page_zone(page)->name,
				   mt < MIGRATE_TYPES && names[mt] ? names[mt] : "Unknown",
				   (flags >> PB_migrate_skip) & 1);
		}
		cond_resched();
	}
	return 0;
}

static int __init pageblocktypes_init(void)
{
	if (!proc_create_single("pageblocktypes", 0444, NULL, show))
		return -ENOMEM;
	return 0;
}

static void __exit pageblocktypes_exit(void)
{
	remove_proc_entry("pageblocktypes", NULL);
}

module_init(pageblocktypes_init);
module_exit(pageblocktypes_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("The migratetype of every pageblock, for buddyfarm captures");
